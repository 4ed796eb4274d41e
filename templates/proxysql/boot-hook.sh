#!/bin/bash
# kiln-boot-config hook for ProxySQL: the config rendered at this boot must be the one
# ProxySQL loads, and ProxySQL reads its config file only when it has no database file.
# Runtime changes made through the admin interface do not survive a reboot: the
# environment's config lives in Parameter Store and the image, nowhere else.
set -euo pipefail
rm -f /var/lib/proxysql/proxysql.db
echo "kiln-boot-config: ProxySQL will build its database from /etc/proxysql.cnf"
