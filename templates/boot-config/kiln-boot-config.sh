#!/bin/bash
# kiln-boot-config: renders this instance's environment-specific files before the
# services that read them start (see kiln-boot-config.service).
#
# Recipes describe what they need in /etc/kiln/boot.d/*.json ("fragments"):
#   parameters  names under the prefix, each {"secret": true} (a SecureString, required),
#               {"default": "..."} (optional) or {} (required), optionally "forbidden": [...]
#   files       boot templates to render: {"template", "path", "owner", "group", "mode"};
#               a template's @@name@@ placeholders take the parameters' values
#   after       executables to run once the fragment's files are in place
# Fragments that need no parameter are applied first, so that monitoring comes up even
# when Parameter Store cannot be read.
#
# Values exist only in this process's memory and in the rendered files: nothing here
# prints a value, passes one on a command line, or writes one to a temporary file
# outside the destination's own folder.
set -euo pipefail
umask 077

readonly FRAGMENTS=/etc/kiln/boot.d
readonly SETTINGS=/etc/kiln/boot-config.env
readonly VALUES_PROGRAM=/usr/local/libexec/kiln/boot-values.jq
readonly RENDER_PROGRAM=/usr/local/libexec/kiln/boot-render.jq

log() {
  echo "kiln-boot-config: $*" >&2
}

die() {
  log "error: $*"
  exit 1
}

# The prefix from the instance tag when it has one (so one image serves several
# environments), else the one baked into the image.
parameter_prefix() {
  local tagged=""
  # shellcheck source=/dev/null
  source "$SETTINGS"
  tagged="$(kiln-imds "meta-data/tags/instance/$KILN_PREFIX_TAG" 2>/dev/null || true)"
  local prefix="${tagged:-$KILN_PARAMETER_PREFIX}"
  [[ "$prefix" == /* ]] || die "parameter prefix '$prefix' does not start with '/'"
  printf '%s' "${prefix%/}"
}

# Fragment files, sorted; none is fine (an image without boot-time files).
fragments() {
  find "$FRAGMENTS" -maxdepth 1 -name '*.json' -type f | sort
}

needs_parameters() {
  jq -e '(.parameters // {}) | length > 0' "$1" >/dev/null
}

# Renders one template to its destination: a temporary file beside it, then a rename.
render_file() {
  local values="$1" template="$2" path="$3" owner="$4" group="$5" mode="$6"
  [[ -f "$template" ]] || die "boot template $template is missing from the image"
  local dir tmp
  dir="$(dirname "$path")"
  [[ -d "$dir" ]] || install -d -m 0755 "$dir"
  tmp="$(mktemp "$dir/.kiln-boot.XXXXXX")"
  if ! printf '%s' "$values" | jq -j --rawfile tpl "$template" -f "$RENDER_PROGRAM" >"$tmp"; then
    rm -f "$tmp"
    die "cannot render $template"
  fi
  chown "$owner:$group" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  log "rendered $path"
}

apply_fragment() {
  local fragment="$1" values="$2"
  local template path owner group mode hook
  while IFS=$'\t' read -r template path owner group mode; do
    render_file "$values" "$template" "$path" "$owner" "$group" "$mode"
  done < <(jq -r '(.files // [])[] | [.template, .path, .owner, .group, .mode] | @tsv' "$fragment")
  while IFS= read -r hook; do
    log "running $hook"
    "$hook" || die "boot hook $hook failed"
  done < <(jq -r '(.after // [])[]' "$fragment")
}

# The values of every parameter the fragments name, as one JSON object, on stdout.
parameter_values() {
  local prefix="$1" wanted region
  shift
  wanted="$(jq -s 'map(.parameters // {}) | add // {}' "$@")"
  region="$(kiln-imds meta-data/placement/region)"
  log "reading parameters under $prefix in $region"
  aws ssm get-parameters-by-path --region "$region" --path "$prefix" --recursive \
    --with-decryption --output json |
    jq -c --arg prefix "$prefix" --argjson wanted "$wanted" -f "$VALUES_PROGRAM"
}

main() {
  local fragment prefix values
  local -a first=() second=()
  while IFS= read -r fragment; do
    if needs_parameters "$fragment"; then second+=("$fragment"); else first+=("$fragment"); fi
  done < <(fragments)

  for fragment in "${first[@]}"; do
    apply_fragment "$fragment" '{}'
  done
  if [[ ${#second[@]} -gt 0 ]]; then
    prefix="$(parameter_prefix)"
    values="$(parameter_values "$prefix" "${second[@]}")" ||
      die "cannot read the parameters under $prefix (see the messages above)"
    for fragment in "${second[@]}"; do
      apply_fragment "$fragment" "$values"
    done
  fi
  log "done"
}

main "$@"
