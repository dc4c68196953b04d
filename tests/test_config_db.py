"""Configuration validation, and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, inspect, select

from dialer.retry import DEFAULT_RULES, Rule
from dirigent import config
from dirigent.config import ConfigError, env_secret_name, parse_settings
from routing.model import Channel
from store import db

BASE = {"pbx": [{"name": "main", "host": "127.0.0.1", "port": 5038, "secret": "s3cr3t"}]}


def test_a_valid_file_gives_typed_settings_and_hides_the_secret():
    settings = parse_settings({**BASE, "http": {"port": 9090}}, env={})
    assert settings.http.port == 9090
    (pbx,) = settings.pbxs
    assert pbx.name == "main" and pbx.secret == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"htp": {}}, "htp", "unknown key"),
        ({"http": {"port": 70000}}, "http.port", "1 to 65535"),
        ({"http": {"port": "80"}}, "http.port", "integer"),
        ({"pbx": [{"name": "a", "secret": "x", "prot": 1}]}, "pbx[0].prot", "unknown key"),
        ({"pbx": [{"name": "a"}]}, "pbx[0].secret", "DIRIGENT_PBX_A_SECRET"),
        ({"pbx": [{"name": "bad name!", "secret": "x"}]}, "pbx[0].name", "letters"),
        (
            {"pbx": [{"name": "a", "secret": "x", "keepalive_interval": 0}]},
            "pbx[0].keepalive_interval",
            "positive",
        ),
        (
            {"pbx": [{"name": "a", "secret": "x"}, {"name": "a", "secret": "y"}]},
            "pbx[1].name",
            "duplicate",
        ),
        ({"database": {"url": "mysql://x"}}, "database.url", "sqlite:// or postgresql://"),
        ({"log": {"format": "xml"}}, "log.format", "'text' or 'json'"),
    ],
)
def test_bad_configuration_names_the_key_and_the_reason(data, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_settings(data, env={})
    assert err.value.key == key and reason in err.value.reason


UK = {"name": "uk-winter", "country": "GB", "caller_id": "+442079460999"}


def test_a_campaign_takes_its_country_rules_and_its_queue_exists():
    settings = parse_settings(
        {
            "campaign": [{**UK, "abandon_target": 0.02, "drop_group": "uk-all"}],
            "agent": [{"id": "a1", "endpoint": "1001", "mode": "nailed", "queues": ["uk-winter"]}],
        },
        env={},
    )
    (c,) = settings.campaigns
    assert c.settings.legal_max_abandon == 0.03 and c.settings.abandon_target == 0.02
    assert c.settings.windows == ("day",), "Ofcom: midnight to midnight"
    assert c.timezone == "Europe/London" and c.ledger_group == "uk-all"
    assert [q.name for q in settings.routing.queues] == ["uk-winter"]
    us = parse_settings(
        {"campaign": [{"name": "us", "country": "US", "caller_id": "+12125550199"}]}, env={}
    )
    assert us.campaigns[0].settings.windows == ("30d", "day")


def test_a_campaigns_attempts_per_day_may_not_exceed_its_countrys():
    de = {"name": "de", "country": "DE", "caller_id": "+493012345678"}
    with pytest.raises(ConfigError) as err:
        parse_settings({"campaign": [{**de, "max_attempts_per_day": 6}]}, env={})
    assert err.value.key == "campaign[0].max_attempts_per_day"
    assert err.value.reason == "at most 3 in DE (the law's limit)"
    (ok,) = parse_settings({"campaign": [{**de, "max_attempts_per_day": 2}]}, env={}).campaigns
    assert ok.compliance().max_attempts_per_day == 2
    (uk,) = parse_settings({"campaign": [{**UK, "max_attempts_per_day": 8}]}, env={}).campaigns
    assert uk.max_attempts_per_day == 8, "no limit in the law (GB): the campaign's own"


def test_a_campaigns_holiday_subdivisions_are_its_countrys():
    """QA5 finding 9: ``holiday_subdivisions = ["XX"]`` passed start-up, then
    every claim failed with a NotImplementedError traceback and the campaign
    idled as "database unavailable"."""
    de = {"name": "de", "country": "DE", "caller_id": "+493012345678"}
    with pytest.raises(ConfigError) as err:
        parse_settings({"campaign": [{**de, "holiday_subdivisions": ["BY", "XX"]}]}, env={})
    assert err.value.key == "campaign[0].holiday_subdivisions"
    assert err.value.reason.startswith("'XX' is not a subdivision of DE (one of BB, BE, BW, BY,")
    (ok,) = parse_settings({"campaign": [{**de, "holiday_subdivisions": ["BY"]}]}, env={}).campaigns
    assert ok.compliance().holiday_subdivisions == ("BY",)


def test_two_agents_on_one_phone_are_refused():
    """QA5 finding 24: two agents on the same endpoint passed the check."""
    agents = [
        {"id": "a1", "endpoint": "1001", "queues": ["sales"]},
        {"id": "a2", "endpoint": "1001", "queues": ["sales"]},
    ]
    with pytest.raises(ConfigError) as err:
        parse_settings({"queue": [{"name": "sales"}], "agent": agents}, env={})
    assert (err.value.key, err.value.reason) == (
        "agent[1].endpoint",
        "phone '1001' is taken by agent 'a1'",
    )
    agents[1]["endpoint"] = "1002"
    assert (
        len(parse_settings({"queue": [{"name": "sales"}], "agent": agents}, env={}).routing.agents)
        == 2
    )


def test_blending_table_is_validated_naming_the_key():
    def blending(table):
        return parse_settings({"routing": {"blending": table}}, env={}).routing.blending

    rules = blending({"block": {"voice": ["email"]}, "deferrable": ["email"]})
    assert rules.block == {Channel.VOICE: frozenset({Channel.EMAIL})}
    assert rules.deferrable == frozenset({Channel.EMAIL}) and rules.calls_waiting_interrupt == 3
    with pytest.raises(ConfigError, match=r"routing.blending.block.voice: unknown channel 'fax'"):
        blending({"block": {"voice": ["fax"]}})
    with pytest.raises(ConfigError, match=r"routing.blending.deferrable: voice is real-time"):
        blending({"deferrable": ["voice"]})
    with pytest.raises(ConfigError, match=r"routing.blending.colour: unknown key"):
        blending({"colour": 1})
    with pytest.raises(ConfigError, match=r"calls_waiting_above: must be a whole number"):
        blending({"offer_calls_to_deferrable_when_calls_waiting_above": -1})
    with pytest.raises(
        ConfigError, match=r"routing.blending.deferrable: must be a list of channels"
    ):
        blending({"deferrable": "email"})


def test_retry_table_is_validated_naming_the_key():
    def retry(table):
        (campaign,) = parse_settings({"campaign": [{**UK, "retry": table}]}, env={}).campaigns
        return campaign.retry

    rules = retry({"no-answer": {"delay": 600, "max_attempts": 2}, "max_attempts_total": 4})
    assert rules.rules["no-answer"] == Rule(600, 2) and rules.max_attempts_total == 4
    assert rules.rules["busy"] == DEFAULT_RULES["busy"], "what is left out keeps its default"
    with pytest.raises(ConfigError, match=r"retry\.busy\.delay: at least 60"):
        retry({"busy": {"delay": 5, "max_attempts": 3}})
    with pytest.raises(ConfigError, match=r"retry\.answered: no retry"):
        retry({"answered": {"delay": 600, "max_attempts": 3}})
    with pytest.raises(ConfigError, match=r"retry\.no-answer\.max_attempts: required"):
        retry({"no-answer": {"delay": 600}})
    with pytest.raises(
        ConfigError, match=r"retry\.max_attempts_total: must be a whole number >= 1"
    ):
        retry({"max_attempts_total": 0})


@pytest.mark.parametrize(
    ("campaign", "key", "reason"),
    [
        ({"country": "FR"}, "campaign[0].country", "no policy pack"),
        ({"caller_id": "anonymous"}, "campaign[0].caller_id", "suppressed caller ID is refused"),
        ({"abandon_target": 0.05}, "campaign[0].abandon_target", "legal maximum 3.0%"),
        ({"ring_timeout": 10}, "campaign[0].ring_timeout", "at least 15 s"),
        ({"mode": "turbo"}, "campaign[0].mode", "unknown dial mode"),
        ({"mode": "Preview"}, "campaign[0].mode", "(one of preview, progressive, power, pre"),
        ({"machine_action": "voicemail"}, "campaign[0].machine_action", "one of hangup, message"),
        ({"timezone": "Mars/Base"}, "campaign[0].timezone", "unknown time zone"),
        (
            {"retry": {"busy": {"delay": 5, "max_attempts": 2}}},
            "campaign[0].retry.busy.delay",
            "60",
        ),
        ({"speed": 3}, "campaign[0].speed", "unknown key"),
        # a control character would only fail when sent: every dial "failed"
        ({"trunk": "PJSIP/{number}@customers\r\nX: y"}, "campaign[0].trunk", "not a valid part"),
        ({"trunk": "PJSIP/{number}@cust\x07"}, "campaign[0].trunk", "not a valid part"),
        ({"trunk": "PJSIP/{number}@my trunk"}, "campaign[0].trunk", "not a valid part"),
        ({"trunk": "{number}"}, "campaign[0].trunk", "TECH/"),
        ({"trunk": "PJSIP/customers"}, "campaign[0].trunk", "must contain {number}"),
        ({"trunk": "PJSIP/{number}@{number}"}, "campaign[0].trunk", "exactly once"),
    ],
)
def test_bad_campaign_configuration_names_the_key(campaign, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_settings({"campaign": [{**UK, **campaign}]}, env={})
    assert err.value.key == key and reason in err.value.reason


@pytest.mark.parametrize("mode", ["preview", "progressive", "power", "predictive"])
@pytest.mark.parametrize("action", ["hangup", "message"])
def test_every_dial_mode_and_machine_action_of_the_file_is_accepted(mode, action):
    campaign = {**UK, "mode": mode, "machine_action": action}
    settings = parse_settings({"campaign": [campaign]}, env={}).campaigns[0].settings
    assert (settings.mode, settings.machine_action) == (mode, action)


def test_a_bad_trunk_is_refused_by_the_pbx_adapters_rule_in_the_same_words():
    """The dialer passes a campaign's trunk through unread; the configuration
    asks the Asterisk adapter, whose refusal is the one operators knew."""
    with pytest.raises(ConfigError) as err:
        parse_settings({"campaign": [{**UK, "trunk": "PJSIP/{number}@my trunk"}]}, env={})
    assert str(err.value) == (
        "campaign[0].trunk: 'PJSIP/{number}@my trunk': 'my trunk' is not a valid part of a"
        " dial string (a letter or digit, then up to 63 of letters, digits and _ . + -)"
    )


def test_secrets_and_database_url_come_from_the_environment():
    env = {env_secret_name("main-2"): "from-env", "DIRIGENT_DATABASE_URL": "postgresql://u@h/d"}
    settings = parse_settings({"pbx": [{"name": "main-2"}]}, env=env)
    assert settings.pbxs[0].secret == "from-env"
    assert settings.database.url == "postgresql://u@h/d"
    assert env_secret_name("main-2") == "DIRIGENT_PBX_MAIN_2_SECRET"


def test_example_config_shipped_with_the_package_is_valid():
    from pathlib import Path

    from dirigent.config import load_settings

    settings = load_settings(Path(config.__file__).with_name("dirigent.example.toml"), env={})
    assert settings.pbxs[0].name == "main"


def test_migrations_create_every_table_and_are_idempotent(database_url):
    db.upgrade(database_url)
    db.upgrade(database_url)  # a second run changes nothing
    engine = db.make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(db.metadata.tables) <= tables
        assert db.current_revision(engine) == "0013"
        with engine.begin() as conn:
            cid = conn.execute(
                insert(db.campaign).values(name="spring", settings={})
            ).inserted_primary_key[0]
            conn.execute(insert(db.dnc).values(e164="+4930123456", campaign_id=cid, source="test"))
            assert conn.execute(select(db.dnc.c.e164)).scalar() == "+4930123456"
        uniques = {u["name"] for u in inspect(engine).get_unique_constraints("dnc")}
        assert "uq_dnc_e164" in uniques, "constraint names follow the naming convention"
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced_on_both_databases(database_url):
    from sqlalchemy.exc import IntegrityError

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(db.dial_list).values(campaign_id=999, name="orphan"))
    finally:
        engine.dispose()


ROUTING = {
    **BASE,
    "routing": {"policy": "best_skill", "wrap_up": 15, "blending": {"deferrable": ["email"]}},
    "queue": [
        {
            "name": "sales",
            "skills": {"de": 3},
            "service_level": {"voice": {"fraction": 0.8, "seconds": 20}},
            "overflow": [{"after": 60, "action": "widen", "min_level": 1}],
            "expertise": [{"attribute": "product_age", "op": ">", "value": 5, "team": "2nd-level"}],
        },
    ],
    "agent": [
        {
            "id": "anna",
            "endpoint": "1001",
            "mode": "nailed",
            "skills": {"de": 8},
            "capacity": {"voice": 1, "chat": 4},
            "queues": ["sales"],
            "auto_login": True,
        }
    ],
}


def test_routing_configuration_is_parsed_into_queues_agents_and_rules():
    from routing.model import Channel

    routing = parse_settings(ROUTING, env={}).routing
    assert routing.policy == "best_skill" and routing.wrap_up == 15
    (queue,) = routing.queues
    assert queue.skills == {"de": 3} and queue.overflow[0].action == "widen"
    assert queue.expertise[0].matches({"product_age": 7})
    (agent,) = routing.agents
    assert (
        agent.mode == "nailed"
        and agent.capacity == {Channel.VOICE: 1, Channel.CHAT: 4}
        and agent.auto_login
    )


@pytest.mark.parametrize(
    ("patch", "key", "reason"),
    [
        ({"routing": {"policy": "random"}}, "routing.policy", "one of"),
        (
            {"routing": {"blending": {"block": {"voice": ["fax"]}}}},
            "routing.blending.block.voice",
            "unknown channel",
        ),
        ({"queue": [{"name": "q1", "skills": {"de": 11}}]}, "queue[0].skills.de", "1 to 10"),
        (
            {"queue": [{"name": "q1", "overflow": [{"after": 5, "action": "explode"}]}]},
            "queue[0].overflow[0].action",
            "widen",
        ),
        (
            {
                "queue": [{"name": "q1"}],
                "agent": [{"id": "a1", "endpoint": "1001", "queues": ["nope"]}],
            },
            "agent[0].queues",
            "unknown queue",
        ),
        (
            {
                "queue": [{"name": "q1"}],
                "agent": [{"id": "a1", "endpoint": "1001", "mode": "psychic"}],
            },
            "agent[0].mode",
            "'ring' or 'nailed'",
        ),
        ({"queue": [{"name": "q1"}], "agent": [{"id": "a1"}]}, "agent[0].endpoint", "required"),
        (  # QA round 3: a ring-mode agent took campaign persons into an empty conference
            {
                "campaign": [{"name": "us", "country": "US", "caller_id": "+12125550199"}],
                "agent": [{"id": "a1", "endpoint": "1001", "mode": "ring", "queues": ["us"]}],
            },
            "agent[0].queues",
            "campaign queue 'us' needs mode = \"nailed\"",
        ),
        (
            {"queue": [{"name": "q1"}], "agent": [{"id": "a1", "endpoint": "1001\r\nX: y"}]},
            "agent[0].endpoint",
            "not a PJSIP endpoint name",
        ),
        (
            {"queue": [{"name": "q1"}], "agent": [{"id": "a1", "endpoint": "al ice"}]},
            "agent[0].endpoint",
            "not a PJSIP endpoint name",
        ),
        (
            {"queue": [{"name": "q1"}], "agent": [{"id": "a1", "endpoint": "-1001"}]},
            "agent[0].endpoint",
            "not a PJSIP endpoint name",
        ),
    ],
)
def test_bad_routing_configuration_names_the_key(patch, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_settings({**BASE, **patch}, env={})
    assert err.value.key == key and reason in err.value.reason


def test_deploy_config_for_compose_is_valid():
    from pathlib import Path

    from dirigent.config import load_settings

    deploy = Path(__file__).parent.parent / "deploy" / "dirigent.toml"
    settings = load_settings(
        deploy,
        env={"DIRIGENT_PBX_MAIN_SECRET": "x", "DIRIGENT_DATABASE_URL": "postgresql://u@db/d"},
    )
    assert settings.pbxs[0].host == "asterisk"


def test_valid_endpoint_and_trunk_names_are_accepted():
    """Names the shipped dialplan (``_[a-zA-Z0-9].``) connects: not only digits."""
    settings = parse_settings(
        {
            **BASE,
            "queue": [{"name": "q1"}],
            "agent": [{"id": "a1", "endpoint": "alice.smith+2", "queues": ["q1"]}],
            "campaign": [{**UK, "trunk": "PJSIP/customers/sip:{number}@127.0.0.1:5080"}],
        },
        env={},
    )
    assert settings.routing.agents[0].endpoint == "alice.smith+2"
    assert settings.campaigns[0].settings.trunk.startswith("PJSIP/customers/")


@pytest.mark.parametrize(
    ("routing", "key"),
    [
        ({"queue": [{"name": "q"}]}, "queue[0].name"),
        ({"queue": [{"name": "q1"}], "agent": [{"id": "a", "endpoint": "1001"}]}, "agent[0].id"),
        (
            {"queue": [{"name": "q1"}], "agent": [{"id": "a1", "endpoint": "7"}]},
            "agent[0].endpoint",
        ),
        # Asterisk's own "failed" extension: an agent of that name would share its channels
        (
            {"queue": [{"name": "q1"}], "agent": [{"id": "failed", "endpoint": "1001"}]},
            "agent[0].id",
        ),
        ({"queue": [{"name": "talk"}]}, "queue[0].name"),
    ],
)
def test_one_letter_names_the_dialplan_cannot_match_are_refused(routing, key):
    """``_[a-zA-Z0-9].`` needs two characters: a one-letter agent, queue or
    endpoint would reach no extension and the caller would be hung up."""
    with pytest.raises(ConfigError) as err:
        parse_settings({**BASE, **routing}, env={})
    assert err.value.key == key


def test_a_control_character_in_an_endpoint_stops_start_up_with_exit_2(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "bad.toml"
    config.write_text(
        '[[queue]]\nname = "q1"\n[[agent]]\nid = "a1"\nendpoint = "1001\\u0007"\nqueues = ["q1"]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "dirigent.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "agent[0].endpoint:" in result.stderr


def test_a_campaign_named_like_an_inbound_queue_says_which_queue_it_dials_into():
    """QA5 finding 24: campaign "sales" beside the inbound [[queue]] "sales"
    passed, and its persons silently went to the inbound queue's agents.
    Dialing into an inbound queue is asked for with ``queue``."""
    sales = {"name": "sales", "country": "GB", "caller_id": "+442079460999"}
    agents = [{"id": "a1", "endpoint": "1001", "mode": "nailed", "queues": ["sales"]}]
    with pytest.raises(ConfigError) as err:
        parse_settings({"queue": [{"name": "sales"}], "campaign": [sales], "agent": agents}, env={})
    assert err.value.key == "campaign[0].name"
    assert "inbound queue 'sales'" in err.value.reason and 'queue = "sales"' in err.value.reason
    asked = {**sales, "queue": "sales"}
    settings = parse_settings(
        {"queue": [{"name": "sales"}], "campaign": [asked], "agent": agents}, env={}
    )
    assert settings.campaigns[0].settings.queue_name == "sales"
    assert settings.routing.campaign_only == frozenset(), "sales takes inbound calls too"
