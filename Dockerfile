# Dirigent server image.  Build: docker build -t dirigent .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY core ./core
COPY center ./center
COPY channels ./channels
COPY store ./store
COPY asterisk ./asterisk
COPY routing ./routing
COPY dialer ./dialer
COPY cti ./cti
COPY sim ./sim
COPY dirigent ./dirigent
RUN pip install --no-cache-dir . && useradd --system --home /app dirigent && chown dirigent /app
USER dirigent
EXPOSE 8080
# The configuration is mounted at /etc/dirigent/dirigent.toml; secrets come
# from DIRIGENT_PBX_<NAME>_SECRET and DIRIGENT_DATABASE_URL.
CMD ["dirigent", "--log-format", "json", "serve", "--config", "/etc/dirigent/dirigent.toml"]
