#!/usr/bin/env bash
# Puts the bridge's credentials and webhook secrets into the stack's Secrets Manager secret, or
# rotates one of them. Values never appear on the command line (where `ps` shows them), in this
# script's output or in the shell history: they come from the environment or from a silent prompt,
# and reach the AWS CLI through a private temporary file.
#
# Usage:
#   infra/put-secrets.sh [--stack NAME] [--region REGION] [--secret-arn ARN] [--no-restart]
#       Sets every variable that is present in the environment (an empty value clears it), asks for
#       the others on a terminal (Enter keeps the current value), keeps the rest as they are.
#   infra/put-secrets.sh --rotate KEY [...]
#       Replaces one value. BRIDGE_WEBINARJAM_SECRET, BRIDGE_EVERWEBINAR_SECRET and
#       BRIDGE_GENERIC_SECRET get a new random value (openssl); any other key (BRIDGE_ZOOM_SECRET_TOKEN,
#       which Zoom issues, or a KlickTipp credential) is read from the environment or a silent prompt.
#       Then it says where the new value has to be pasted.
#   infra/put-secrets.sh --list      Shows which keys are set (names only).
#
# The functions read the secret once per cold start, so afterwards this script makes both functions
# start fresh execution environments (a configuration update of their Description) unless --no-restart.
# Needs: aws (CLI v2, credentials for the stack's account), python3 (JSON only), openssl (--rotate).
set -euo pipefail

# The keys of the secret's JSON object (webinar_bridge::adapters::aws_secrets::SECRET_KEYS).
KEYS="KLICKTIPP_USERNAME KLICKTIPP_PASSWORD KLICKTIPP_DEVELOPER_KEY KLICKTIPP_CUSTOMER_KEY"
KEYS="$KEYS KLICKTIPP_LISTBUILDING_APIKEY BRIDGE_WEBINARJAM_SECRET BRIDGE_EVERWEBINAR_SECRET"
KEYS="$KEYS BRIDGE_ZOOM_SECRET_TOKEN BRIDGE_GENERIC_SECRET"
# Platform API credentials, read by the reconcile function (pulls ended sessions).
KEYS="$KEYS BRIDGE_WEBINARJAM_API_KEY BRIDGE_EVERWEBINAR_API_KEY ZOOM_ACCOUNT_ID ZOOM_CLIENT_ID ZOOM_CLIENT_SECRET"

STACK="${STACK_NAME:-webinar-bridge}"
REGION=""
SECRET_ARN=""
ROTATE=""
RESTART=1
LIST=0

die() { printf 'put-secrets: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --stack) STACK="${2:?--stack needs a name}"; shift 2 ;;
    --region) REGION="${2:?--region needs a region}"; shift 2 ;;
    --secret-arn) SECRET_ARN="${2:?--secret-arn needs an ARN}"; shift 2 ;;
    --rotate) ROTATE="${2:?--rotate needs a key}"; shift 2 ;;
    --no-restart) RESTART=0; shift ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

is_key() { case " $KEYS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if [ -n "$ROTATE" ] && ! is_key "$ROTATE"; then
  die "--rotate $ROTATE: not a bridge secret; the keys are: $KEYS"
fi

command -v aws >/dev/null || die "the AWS CLI (aws) is not installed"
command -v python3 >/dev/null || die "python3 is needed to build the JSON"

aws_() { if [ -n "$REGION" ]; then aws --region "$REGION" "$@"; else aws "$@"; fi; }

stack_output() {
  aws_ cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}

if [ -z "$SECRET_ARN" ]; then
  SECRET_ARN="$(stack_output SecretArn)" || die "cannot read stack $STACK (wrong --stack/--region, or no credentials?)"
fi
case "$SECRET_ARN" in arn:*:secretsmanager:*) ;; *) die "stack $STACK has no SecretArn output (got '$SECRET_ARN')" ;; esac

# Everything below handles values: keep them out of traces even if someone runs `bash -x`.
set +x
umask 077
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# The current value, so that keys not given now are kept. A secret without any value yet counts as {}.
if ! aws_ secretsmanager get-secret-value --secret-id "$SECRET_ARN" --query SecretString --output text \
  >"$WORK/current.json" 2>"$WORK/error.txt"; then
  if grep -q "ResourceNotFoundException" "$WORK/error.txt"; then
    echo '{}' >"$WORK/current.json"
  else
    cat "$WORK/error.txt" >&2
    die "cannot read $SECRET_ARN (the caller needs secretsmanager:GetSecretValue)"
  fi
fi

status() {
  WB_CURRENT_FILE="$WORK/${1:-current.json}" WB_KEYS="$KEYS" python3 - <<'PY'
import json, os
data = json.load(open(os.environ["WB_CURRENT_FILE"]))
for key in os.environ["WB_KEYS"].split():
    value = data.get(key) or ""
    print(f"  {key:32} {'set' if value.strip() else 'empty (unset)'}")
PY
}

if [ "$LIST" = 1 ]; then
  say "Secret $SECRET_ARN:"
  status >&2
  exit 0
fi

interactive=0
[ -t 0 ] && interactive=1

# New values are passed to python3 as WB_NEW_<KEY> environment variables (never as arguments).
ask() { # variable suffix, prompt, name to report
  local value=""
  [ "$interactive" = 1 ] || die "${3:-$1} is not in the environment and there is no terminal to ask on"
  printf '%s: ' "$2" >&2
  IFS= read -r -s value
  printf '\n' >&2
  printf -v "WB_NEW_$1" '%s' "$value"
  export "WB_NEW_$1"
}

generated=""
if [ -n "$ROTATE" ]; then
  case "$ROTATE" in
    BRIDGE_WEBINARJAM_SECRET|BRIDGE_EVERWEBINAR_SECRET)
      command -v openssl >/dev/null || die "openssl is needed to generate a secret"
      # Hex: travels unescaped in ?token= and in a Bearer header.
      WB_NEW_VALUE="$(openssl rand -hex 32)"
      generated=1 ;;
    BRIDGE_GENERIC_SECRET)
      command -v openssl >/dev/null || die "openssl is needed to generate a secret"
      # Standard Webhooks format: whsec_ + base64 of 32 random bytes; also usable as a Bearer token.
      WB_NEW_VALUE="whsec_$(openssl rand -base64 32)"
      generated=1 ;;
    *)
      if [ -n "${!ROTATE+x}" ]; then
        WB_NEW_VALUE="${!ROTATE}"
      else
        [ "$ROTATE" = BRIDGE_ZOOM_SECRET_TOKEN ] &&
          say "Zoom issues this token: Marketplace > Manage > your app > Features > Access > Secret Token > Regenerate."
        ask VALUE "New $ROTATE (input hidden)" "$ROTATE"
      fi ;;
  esac
  [ -n "$WB_NEW_VALUE" ] || die "the new $ROTATE is empty; nothing changed"
  printf -v "WB_NEW_$ROTATE" '%s' "$WB_NEW_VALUE"
  export "WB_NEW_$ROTATE"
  unset WB_NEW_VALUE
else
  for key in $KEYS; do
    if [ -n "${!key+x}" ]; then
      printf -v "WB_NEW_$key" '%s' "${!key}"
      export "WB_NEW_$key"
    elif [ "$interactive" = 1 ]; then
      ask "$key" "$key (input hidden; Enter keeps the current value)"
      # Enter = keep: an empty answer is not a change (clear a key with KEY= in the environment).
      name="WB_NEW_$key"
      [ -n "${!name}" ] || unset "$name"
    fi
  done
fi

# Merge, check the few rules that would stop the functions from starting, write the new JSON.
changed="$(WB_CURRENT_FILE="$WORK/current.json" WB_OUT_FILE="$WORK/new.json" WB_KEYS="$KEYS" python3 - <<'PY'

import base64, binascii, json, os, sys
keys = os.environ["WB_KEYS"].split()
try:
    data = json.load(open(os.environ["WB_CURRENT_FILE"]))
    if not isinstance(data, dict):
        raise ValueError
except ValueError:
    sys.exit("put-secrets: the secret does not hold a JSON object; fix or empty it first")
changed = []
for key in keys:
    new = os.environ.get("WB_NEW_" + key)
    if new is not None:
        new = new.strip()
        if (data.get(key) or "") != new:
            changed.append(key)
        data[key] = new
for key in keys:
    data.setdefault(key, "")

def problem(key, text):
    sys.exit(f"put-secrets: {key}: {text}; nothing was written")

generic = data["BRIDGE_GENERIC_SECRET"]
if generic.startswith("whsec_"):
    try:
        raw = base64.b64decode(generic[6:], validate=True)
    except binascii.Error:
        problem("BRIDGE_GENERIC_SECRET", "a whsec_ secret must be followed by base64 (Standard Webhooks)")
    if not 24 <= len(raw) <= 64:
        problem("BRIDGE_GENERIC_SECRET", "a whsec_ secret must decode to 24 to 64 bytes")
elif generic and len(generic) < 16:
    problem("BRIDGE_GENERIC_SECRET", "must be at least 16 characters (or a whsec_ Standard Webhooks secret)")
dev, cust = data["KLICKTIPP_DEVELOPER_KEY"], data["KLICKTIPP_CUSTOMER_KEY"]
if bool(dev) != bool(cust):
    problem("KLICKTIPP_DEVELOPER_KEY" if cust else "KLICKTIPP_CUSTOMER_KEY", "developer and customer key go together")
if dev:
    try:
        bytes.fromhex(dev)
    except ValueError:
        problem("KLICKTIPP_DEVELOPER_KEY", "must be the hexadecimal developer key KlickTipp issued")
if (dev or data["KLICKTIPP_PASSWORD"]) and not data["KLICKTIPP_USERNAME"]:
    problem("KLICKTIPP_USERNAME", "is required with a password or a developer key")
if data["KLICKTIPP_USERNAME"] and not (dev or data["KLICKTIPP_PASSWORD"]):
    problem("KLICKTIPP_PASSWORD", "is required with KLICKTIPP_USERNAME (or a developer + customer key)")
with open(os.environ["WB_OUT_FILE"], "w") as out:
    json.dump(data, out)
print(" ".join(changed))
PY
)" || exit 1
[ -s "$WORK/new.json" ] || die "nothing was written"
for key in $KEYS; do unset "WB_NEW_$key"; done

aws_ secretsmanager put-secret-value --secret-id "$SECRET_ARN" --secret-string "file://$WORK/new.json" \
  --query VersionId --output text >"$WORK/version.txt"
say "Changed: ${changed:-nothing (the same values were stored again)}"
say "Stored version $(cat "$WORK/version.txt") of $SECRET_ARN:"
status new.json >&2

if [ "$RESTART" = 1 ]; then
  # The functions cache the secret per execution environment; a configuration update makes Lambda
  # start new ones. Only the Description changes (CloudFormation drift there is harmless).
  stamp="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for output in IngestFunctionName ConsumerFunctionName ReconcileFunctionName; do
    fn="$(stack_output "$output" 2>/dev/null || true)"
    case "$fn" in ""|None) say "  (no $output output on $STACK: restart that function yourself)"; continue ;; esac
    description="$(aws_ lambda get-function-configuration --function-name "$fn" --query Description --output text)"
    description="${description%% [secrets reloaded*}"
    aws_ lambda update-function-configuration --function-name "$fn" \
      --description "$description [secrets reloaded $stamp]" --query LastUpdateStatus --output text >/dev/null
    say "  $fn: new execution environments from now on"
  done
fi

if [ -n "$ROTATE" ]; then
  url_output=""
  case "$ROTATE" in
    BRIDGE_WEBINARJAM_SECRET)
      url_output=WebinarJamWebhookUrl
      say "Paste it now into WebinarJam: every webinar > Integrations > Custom Webhook automation rule, either as"
      say "the Bearer token or in the URL's ?token=. WebinarJam holds one token at a time and documents no"
      say "retries: events sent between this change and the paste are rejected (401), so do it in a quiet window." ;;
    BRIDGE_EVERWEBINAR_SECRET)
      url_output=EverWebinarWebhookUrl
      say "Paste it now into EverWebinar: every webinar's Custom Webhook automation rules (Bearer token or ?token=)."
      say "Events sent before the paste are rejected (401): rotate in a quiet window." ;;
    BRIDGE_ZOOM_SECRET_TOKEN)
      say "Zoom signs with the regenerated token from now on; requests it signed in between failed with 401 and"
      say "Zoom retries them 5, 25 and 85 minutes after the first attempt, so a prompt update loses nothing."
      say "If Zoom asks to validate the endpoint again, press Validate: the bridge answers with the new token." ;;
    BRIDGE_GENERIC_SECRET)
      say "Give the new secret to the sending tool (Standard Webhooks signing secret, or Bearer token). The bridge"
      say "holds one secret; a sender that signs with old and new secret side by side (space-separated"
      say "webhook-signature entries) is accepted throughout the switch." ;;
    KLICKTIPP_*)
      say "The consumer uses the new KlickTipp credential from its next cold start (restarted above)." ;;
  esac
  if [ -n "$generated" ]; then
    # Shown once, and only on a terminal, so the value does not end up in a CI log or a file.
    if [ -t 1 ]; then
      value="$(WB_FILE="$WORK/new.json" WB_KEY="$ROTATE" python3 -c 'import json,os;print(json.load(open(os.environ["WB_FILE"]))[os.environ["WB_KEY"]])')"
      printf '\nNew %s (shown once):\n%s\n' "$ROTATE" "$value"
      if [ -n "$url_output" ]; then
        url="$(stack_output "$url_output" 2>/dev/null || true)"
        case "$url" in *"?token="*) printf 'URL form:\n%s\n' "${url%%\?token=*}?token=$value" ;; esac
      fi
      unset value
    else
      say "Not a terminal, so the value is not printed. Read it with:"
      say "  aws secretsmanager get-secret-value --secret-id $SECRET_ARN --query SecretString --output text"
    fi
  fi
fi
