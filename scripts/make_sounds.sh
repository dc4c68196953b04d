#!/usr/bin/env bash
# Makes the two messages the shipped dialplan plays (8 kHz 16-bit mono WAV,
# what Asterisk plays without transcoding):
#
#   abandon.wav  dirigent-abandon: a live answer with no free agent.  The law
#                wants it within 2 s of the answer: who called and how to
#                call back or opt out (FCC 47 CFR 64.1200(a)(7); Ofcom's
#                persistent-misuse policy; TKG/UWG practice in Germany).
#   message.wav  dirigent-message: left on an answering machine
#                (machine_action = "message").
#
# The committed files in asterisk/sounds/ were made by this script with its
# default texts.  They name no company and no number: replace them with a
# recording of your own that does (a legal requirement), or run
#
#   scripts/make_sounds.sh OUTDIR "Acme Energy" "0800 123 4567"
#
# which needs espeak-ng and sox (Debian: apt-get install espeak-ng sox).
set -euo pipefail
out=${1:-"$(dirname "$0")/../asterisk/sounds"}
company=${2:-"the company that called you"}
callback=${3:-"the number shown on your phone"}
mkdir -p "$out"
say() {  # say TEXT FILE: synthesise, then 8 kHz 16-bit mono, 0.3 s of silence trimmed at the start
  local tmp
  tmp=$(mktemp --suffix=.wav)
  espeak-ng -v en-gb -s 155 -w "$tmp" "$1"
  sox "$tmp" -r 8000 -b 16 -c 1 -e signed-integer "$2" silence 1 0.05 0.5% norm -3
  rm -f "$tmp"
}
say "Hello. This call was made by ${company}. We are sorry, no one is free to speak with you now. We will not call you again today. To call us back, or to stop our calls, please call ${callback}. Goodbye." \
  "$out/abandon.wav"
say "Hello. This is a message from ${company}. Please call us back on ${callback}. If you do not want us to call you again, call that number and tell us. Thank you. Goodbye." \
  "$out/message.wav"
ls -l "$out"/abandon.wav "$out"/message.wav
