"""Hydra's own errors on the command line as one line a newcomer can act on, exit status 2.

Hydra prints a misspelt option with every option of its group and the config search path
(21 to 42 lines), suggests `+key=value` for a misspelt key (which the project's checks then
refuse), and knows nothing of how clusterbench is installed. `run_hydra(main)` runs the
command line's Hydra entry point with Hydra's errors raised instead of printed
(HYDRA_FULL_ERROR, unless the user set it: then they want Hydra's full trace) and translates the
ones it knows into one `error: ...` line:

- a misspelt option (`model=kmenas`, `dataset=handwriten`, `+experiment=cc_mnsit`): the nearest
  options;
- an unknown key (`trainer.max_epoch=3`): the nearest key of that node;
- a launcher or sweeper whose Hydra plugin is not installed (`-m +launcher=local` without
  hydra-joblib-launcher): the pip command (it works for a wheel as for a checkout);
- `+group=option` for a group that has a value (`+logger=wandb`): the override without the plus;
  `group=option` for a group added with a plus (`sweep=...`): with it;
- an override Hydra's grammar cannot read: the quoting that works. Values holding letters
  outside ASCII (`paths.data_dir=/data/Müller`), which Hydra's lexer refuses unquoted, are
  quoted before Hydra sees them (`quote_plain_values`), so a shell-quoted path simply works.

(`prepare_argv` also names a single run on the user's own file after it: data/own.py.)

Anything else goes on as Hydra (or Python) reports it.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Callable, Sequence

# `key=value` on the command line: the key part (with Hydra's +, ++ and ~ prefixes)
_OVERRIDE = re.compile(r"^(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w.@/-]*)=(?P<value>.*)$", re.S)
# characters that give a value a meaning in Hydra's grammar: such values are left as they are
_GRAMMAR = set("'\"[]{}(),$\\=")


def quote_plain_values(argv: Sequence[str]) -> list[str]:
    """`key=value` overrides whose value holds letters outside ASCII (which Hydra's lexer
    refuses unquoted) and nothing of Hydra's grammar, with the value quoted: `key='value'`."""
    out = []
    for arg in argv:
        match = _OVERRIDE.match(arg)
        value = match["value"] if match else ""
        if match and not value.isascii() and not (_GRAMMAR & set(value)):
            arg = f"{match['prefix'] or ''}{match['key']}='{value}'"
        out.append(arg)
    return out


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """The command line as Hydra gets it: values quoted (quote_plain_values), and a run on the
    user's own file named after it (data/own.py run_folder_override, train.yaml's folder pattern)."""
    from omegaconf import OmegaConf

    from clusterbench._configs import config_dir
    from clusterbench.data.own import run_folder_override

    argv = quote_plain_values(argv)
    pattern = OmegaConf.to_container(OmegaConf.load(os.path.join(config_dir(), "train.yaml")).hydra.run)["dir"]  # unresolved
    extra = run_folder_override(argv, str(pattern))
    return argv if extra is None else [*argv, extra]


def run_hydra(main: Callable[[], object]) -> None:
    """Calls Hydra's `main` (sys.argv as the command line); Hydra errors that translate() knows
    are one line on stderr and exit status 2."""
    from hydra.errors import CompactHydraException, HydraException
    from omegaconf.errors import OmegaConfBaseException

    sys.argv[1:] = prepare_argv(sys.argv[1:])
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # raise, do not print: translated below
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        line = translate(err, sys.argv[1:])
        if line is not None:
            print(f"error: {line}", file=sys.stderr)
            sys.exit(2)
        if not isinstance(err, CompactHydraException):
            raise
        # as Hydra reports the errors it does not trace: its message, and its cause's
        print(err, file=sys.stderr)
        if isinstance(err.__cause__, OmegaConfBaseException):
            print(err.__cause__, file=sys.stderr)
        sys.exit(1)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def translate(err: BaseException, argv: Sequence[str]) -> str | None:
    """One line for a Hydra error that a newcomer can act on, or None for one it does not know."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        return _missing_option(err.missing_cfg_file, list(err.options or []), argv)
    if isinstance(err, OverrideParseException):
        return _unreadable_override(err, argv)
    if isinstance(err, ConfigCompositionException):
        text = str(err)
        key = re.search(r"Could not override '([^']+)'", text)
        if key and "No match in the defaults list" in text:
            given = _given(key[1], argv) or f"{key[1]}=..."
            return f"{given}: {key[1]} is added with a plus: +{given.lstrip('+~')}"
        if key and err.__cause__ is not None:
            return _unknown_key(key[1], err.__cause__, argv)
        ambiguous = re.search(r"Ambiguous value for argument '([^']+)'", text)
        if ambiguous:
            return (
                f"{ambiguous[1]}: a comma-separated list sweeps only in a multirun (add -m); as a list write key=[a,b], "
                "as one string quote it: 'key=\"a,b\"'"
            )
        multiple = re.search(r"Multiple values for (\S+?)\.", text)
        if multiple:
            group = multiple[1]
            given = _given(group, argv) or f"+{group}=..."
            return f"{given}: {group} has a value already (train.yaml's defaults); drop the plus to replace it: {given.lstrip('+')}"
    return None


def _given(key: str, argv: Sequence[str]) -> str | None:
    """The command line's override of `key` (with its prefix), if there is one."""
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if match and match["key"] == key:
            return arg
    return None


def _missing_option(missing: str, options: list[str], argv: Sequence[str]) -> str:
    group, name = missing.rsplit("/", 1)
    if group.startswith("hydra/"):  # hydra/launcher/joblib: a plugin's config, shipped with the plugin
        kind = group.rsplit("/", 1)[-1]
        package = f"hydra-{name.split('_')[0]}-{kind}"
        return (
            f"{group}={name}: the Hydra plugin that provides it is not installed; install it with: "
            f'pip install {package} (in a checkout: pip install -e ".[launchers]")'
        )
    given = _given(group, argv) or f"{group}={name}"
    near = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    if near:
        hint = f"did you mean {' or '.join(near)}? (python -m clusterbench lists every option)"
    else:
        hint = f"options: {', '.join(options)}" if options else "python -m clusterbench lists the options"
    return f"{given}: no option '{name}' in {group}; {hint}"


def _unknown_key(key: str, cause: BaseException, argv: Sequence[str]) -> str:
    node = getattr(cause, "parent_node", None)
    keys = [str(k) for k in node.keys() if not str(k).startswith("_")] if node is not None and hasattr(node, "keys") else []
    parent, _, leaf = key.rpartition(".")
    given = _given(key, argv) or key
    near = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.6)
    where = f" of {parent}" if parent else ""
    if near:
        return f"{given}: no key '{leaf}'{where}; did you mean {parent + '.' if parent else ''}{near[0]}?"
    listed = f" (keys: {', '.join(keys)})" if keys else ""
    return f"{given}: no key '{leaf}'{where}{listed}"


def _unreadable_override(err: BaseException, argv: Sequence[str]) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    bad = None
    for arg in argv:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_override(arg)
        except HydraException:  # the parser's own errors for one override
            bad = arg
            break
    first = " ".join(str(err).split("See https://")[0].split())
    match = _OVERRIDE.match(bad) if bad else None
    if match:
        key, value = match["key"], match["value"].replace('"', '\\"')
        quoted = f"'{match['prefix'] or ''}{key}=\"{value}\"'"
        return f"{bad}: Hydra cannot read this value ({first}); quote it inside the shell's quotes: {quoted}"
    return f"{bad or first}: an override is key=value (a value with spaces or special characters quoted: 'key=\"a value\"')"
