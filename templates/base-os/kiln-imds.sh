#!/bin/bash
# kiln-imds PATH: reads one instance metadata path through IMDSv2, which kiln's builders
# and images require (no token-less IMDSv1). Example: kiln-imds meta-data/placement/region
set -euo pipefail

readonly IMDS=http://169.254.169.254/latest
# One read per token: a minute is plenty and leaves nothing long-lived behind.
readonly TOKEN_TTL_SECONDS=60
# IMDS answers in milliseconds; a few retries ride out an agent restart at boot.
readonly RETRIES=5
readonly TIMEOUT_SECONDS=5

if [[ $# -ne 1 ]]; then
  echo "usage: kiln-imds PATH   (for example meta-data/instance-id)" >&2
  exit 2
fi

token="$(curl -fsS --retry "$RETRIES" --retry-connrefused --max-time "$TIMEOUT_SECONDS" \
  -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: $TOKEN_TTL_SECONDS")"
curl -fsS --retry "$RETRIES" --retry-connrefused --max-time "$TIMEOUT_SECONDS" \
  -H "X-aws-ec2-metadata-token: $token" "$IMDS/$1"
