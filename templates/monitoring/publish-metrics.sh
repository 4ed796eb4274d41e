#!/bin/bash
# Publishes kiln's custom metrics to CloudWatch, from cron every minute:
#   ProxySQLClientConnections, ProxySQLConnectionsUsed/Free/Errors (connection pool),
#   LaravelResponseTime (ms, a request to /health), LaravelHealthy (1/0),
#   AuroraConnectionStatus, AuroraReaderConnectionStatus (1 when ProxySQL has an ONLINE
#   backend in hostgroup 0 / 1).
# Dimension: AutoScalingGroupName only, exactly what the alarms use.
# --dry-run prints the metric data as JSON instead of publishing it.
# A probe that fails leaves its metrics out; the rest is still published.
set -euo pipefail

readonly NAMESPACE={{ custom_metrics_namespace | shell_quote }}
readonly HEALTH_URL={{ health_url | shell_quote }}
readonly STATS_CLIENT=/etc/kiln/secrets/proxysql-stats.cnf
readonly ASG_CACHE=/run/kiln/asg-name
# Every probe ends well inside cron's one-minute period.
readonly PROBE_TIMEOUT_SECONDS=10

dry_run=false
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=true
fi

metrics=()

add() {
  metrics+=("$1 $2 $3")
}

stats() {
  mysql --defaults-extra-file="$STATS_CLIENT" --connect-timeout="$PROBE_TIMEOUT_SECONDS" \
    -N -B -e "$1"
}

# 1 when ProxySQL has an ONLINE backend in the hostgroup, else 0.
online() {
  local count
  count="$(stats "SELECT COUNT(*) FROM stats_mysql_connection_pool
    WHERE hostgroup = $1 AND status = 'ONLINE'")" || count=0
  if [[ "${count:-0}" -gt 0 ]]; then echo 1; else echo 0; fi
}

probe_proxysql() {
  local clients="" used=0 free=0 errors=0
  if [[ -r "$STATS_CLIENT" ]]; then
    clients="$(stats "SELECT Variable_Value FROM stats_mysql_global
      WHERE Variable_Name = 'Client_Connections_connected'")" || clients=""
  fi
  if [[ -z "$clients" ]]; then
    echo "ProxySQL stats are unavailable" >&2
    add AuroraConnectionStatus 0 Count
    add AuroraReaderConnectionStatus 0 Count
    return 0
  fi
  add ProxySQLClientConnections "$clients" Count
  read -r used free errors < <(stats "SELECT COALESCE(SUM(ConnUsed), 0),
    COALESCE(SUM(ConnFree), 0), COALESCE(SUM(ConnERR), 0) FROM stats_mysql_connection_pool") ||
    true
  add ProxySQLConnectionsUsed "${used:-0}" Count
  add ProxySQLConnectionsFree "${free:-0}" Count
  add ProxySQLConnectionErrors "${errors:-0}" Count
  add AuroraConnectionStatus "$(online 0)" Count
  add AuroraReaderConnectionStatus "$(online 1)" Count
}

probe_laravel() {
  local result code seconds
  if ! result="$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' \
      --max-time "$PROBE_TIMEOUT_SECONDS" "$HEALTH_URL")"; then
    echo "no answer from $HEALTH_URL" >&2
    add LaravelHealthy 0 Count
    return 0
  fi
  read -r code seconds <<<"$result"
  add LaravelResponseTime "$(awk -v s="$seconds" 'BEGIN { printf "%d", s * 1000 }')" Milliseconds
  add LaravelHealthy "$([[ "$code" == 200 ]] && echo 1 || echo 0)" Count
}

# The group's name, from the instance's aws:autoscaling:groupName tag (the instance
# role needs ec2:DescribeTags, as the CloudWatch agent does), cached until reboot.
asg_name() {
  if [[ -s "$ASG_CACHE" ]]; then
    cat "$ASG_CACHE"
    return 0
  fi
  local instance name
  instance="$(kiln-imds meta-data/instance-id)"
  name="$(aws ec2 describe-tags --region "$region" \
    --filters "Name=resource-id,Values=$instance" "Name=key,Values=aws:autoscaling:groupName" \
    --query 'Tags[0].Value' --output text)"
  if [[ -z "$name" || "$name" == None ]]; then
    return 1
  fi
  install -d -m 0755 /run/kiln
  printf '%s' "$name" >"$ASG_CACHE"
  printf '%s' "$name"
}

metric_data() {
  printf '%s\n' "${metrics[@]}" | jq -R -s --arg asg "$1" '
    split("\n") | map(select(length > 0) | split(" ")
      | {MetricName: .[0], Value: (.[1] | tonumber), Unit: .[2],
         Dimensions: [{Name: "AutoScalingGroupName", Value: $asg}]})'
}

probe_proxysql
probe_laravel

if [[ "$dry_run" == true ]]; then
  metric_data "(dry run)"
  exit 0
fi

region="$(kiln-imds meta-data/placement/region)"
if ! asg="$(asg_name)"; then
  echo "not in an Auto Scaling group: nothing to publish" >&2
  exit 0
fi
aws cloudwatch put-metric-data --region "$region" --namespace "$NAMESPACE" \
  --metric-data "$(metric_data "$asg")"
