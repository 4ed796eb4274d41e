# kiln-boot-config: turns `aws ssm get-parameters-by-path` output into the values of
# the parameters the fragments want, keyed by name under the prefix.
# Arguments: $prefix (no trailing slash), $wanted ({name: {secret?, default?, forbidden?}}).
# Errors name parameters, never values.

# Characters no rendered file can hold safely unquoted or quoted: quotes, backslash,
# dollar (shell and .env interpolation), backtick, and line breaks.
def unsafe: test("[\"'\\\\$`\\n\\r]");

((.Parameters // [])
  | map({key: (.Name | ltrimstr($prefix + "/")), value: {value: .Value, type: .Type}})
  | from_entries) as $found
| ([$wanted | to_entries[]
    | select($found[.key] == null and (.value | has("default") | not))
    | "\($prefix)/\(.key)"]) as $missing
| if ($missing | length) > 0 then
    error("missing parameters: \($missing | join(", "))")
  else . end
| [$wanted | to_entries[]
    | .key as $name
    | .value as $spec
    | ($found[$name] // null) as $p
    | if $p == null then {key: $name, value: ($spec.default | tostring)}
      elif ($spec.secret // false) and $p.type != "SecureString" then
        error("parameter \($prefix)/\($name) is a secret but stored as \($p.type): store it as a SecureString")
      else {key: $name, value: $p.value}
      end
    | .value as $value
    | if ($value | unsafe) then
        error("parameter \($prefix)/\($name) contains a quote, backslash, dollar, backtick or line break, which the rendered files cannot hold safely")
      elif ($spec.forbidden // []) | any(. == $value) then
        error("parameter \($prefix)/\($name) has a value this image refuses (a well-known default)")
      else . end]
| from_entries
