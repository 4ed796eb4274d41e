#!/bin/bash
# kiln-boot-config hook for Laravel: the config cache is built now, from the .env just
# rendered with this environment's values, and as apache, who must be able to rewrite it.
set -euo pipefail
cd {{ app_dir | shell_quote }}
runuser -u apache -- php artisan config:cache
echo "kiln-boot-config: Laravel config cached for APP_ENV={{ app_env }}"
