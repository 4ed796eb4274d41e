# kiln-boot-config: replaces every @@name@@ in the template $tpl with the value of that
# parameter from the input object. A placeholder without a value is an error, so a file
# is never rendered half-filled.
. as $values
| $tpl
| gsub("@@(?<name>[A-Za-z0-9_./-]+)@@";
    if $values[.name] == null then error("no value for placeholder @@\(.name)@@")
    else $values[.name] end)
