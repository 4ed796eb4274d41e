#!/bin/bash
# kiln-boot-config hook for the CloudWatch agent: fetch-config consumes (moves) its
# source file, so it gets the copy rendered at this boot; the template stays.
set -euo pipefail
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl \
  -a fetch-config -m ec2 -c file:/etc/kiln/rendered/amazon-cloudwatch-agent.json
echo "kiln-boot-config: CloudWatch agent configured"
