"""Loader of `stacks.yaml`, the one description of what each stack starts.

Plain Python (PyYAML only): imported by the `ros2 launch` files beside it, by
`scripts/launch_stack.py` and by the tests, so none of them can drift from the description.

Schema (`format_version: 1`):

```
repository_packages: [pkg, ...]   packages built by this repository (checked by the tests)
arguments: {NAME: {default: str, description: str, choices: [str, ...]?}}
stacks:
  STACK:
    description: str
    arguments: [NAME, ...]         launch arguments this stack declares (from `arguments`)
    defaults: {NAME: str}          optional per-stack defaults replacing the shared ones
    includes: [{package, file, arguments: {NAME: value}, requires?}]   other launch files (ros2 launch only)
      requires: {version: ">=A.B.C,<X.Y.Z", why: str, install: str}
                                   the package's versions (package.xml) whose launch file declares
                                   every argument passed; anything else is refused before start
    nodes:
      - name, package, executable  node name, ROS package, console script
        namespace: str             optional, default ""
        lifecycle: bool            managed node: launched as LifecycleNode
        autostart: value           lifecycle only: "true" -> configure, then activate
        self_start: bool           lifecycle only: with autostart true the node gets `--autostart`
                                   and brings itself up (waiting for its robot, retrying); the
                                   launch does not drive its transitions. Not with `condition`.
        condition: value           optional: the node starts only when it evaluates to true
        parameter_files: [value]   YAML files, in order (later ones override earlier ones)
        parameters: {NAME: value}  overrides, applied after the files
        remappings: [[from, to]]
        arguments: [value]         extra command-line arguments before --ros-args
```

A value is a YAML scalar; strings may contain `$(arg NAME)` and `$(find-pkg-share PKG)`, the
ROS 2 launch XML substitutions. After substitution parameter values are parsed as YAML, as
`ros2 launch` and `--ros-args -p` both do, so `"$(arg seed)"` with seed "3" is the integer 3.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DESCRIPTION_PATH = Path(__file__).resolve().parent / "stacks.yaml"
FORMAT_VERSION = 1

_TOKEN = re.compile(r"\$\((arg|find-pkg-share)\s+([A-Za-z_][A-Za-z0-9_]*)\)")
_NODE_KEYS = {"name", "package", "executable", "namespace", "lifecycle", "autostart", "self_start",
              "condition", "parameter_files", "parameters", "remappings", "arguments"}
SELF_START_FLAG = "--autostart"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_CLAUSE = re.compile(r"(>=|<=|==|>|<)\s*([0-9]+(?:\.[0-9]+)*)")
_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b}

# A piece of a value: ("text", s), ("arg", launch argument name) or ("pkg", package name).
Part = tuple[str, str]


class StackError(ValueError):
    """The description (or a launch argument) is invalid; the message names the field."""


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    namespace: Any = ""
    lifecycle: bool = False
    autostart: Any = "false"
    condition: Any = None
    parameter_files: tuple[Any, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[Any, Any], ...] = ()
    arguments: tuple[Any, ...] = ()
    self_start: bool = False


@dataclass(frozen=True)
class IncludeSpec:
    package: str
    file: Any
    arguments: dict[str, Any] = field(default_factory=dict)
    requires: Requirement | None = None


@dataclass(frozen=True)
class Requirement:
    """Versions of an included package that the stack works with, and what to tell a user who has another."""

    version: str   # comma-separated clauses: >=, >, <=, <, == followed by a dotted version
    why: str
    install: str

    def clauses(self) -> list[tuple[str, tuple[int, ...]]]:
        out = []
        for clause in self.version.split(","):
            m = _CLAUSE.fullmatch(clause.strip())
            if m is None:
                raise StackError(f"requires.version: cannot read {clause.strip()!r} (e.g. '>=3.2.0,<4')")
            out.append((m.group(1), parse_version(m.group(2))))
        return out

    def admits(self, version: str) -> bool:
        v = parse_version(version)
        return all(_OPS[op](v, bound) for op, bound in self.clauses())


@dataclass(frozen=True)
class Stack:
    name: str
    description: str
    arguments: dict[str, Argument]
    nodes: tuple[NodeSpec, ...]
    includes: tuple[IncludeSpec, ...] = ()


@dataclass(frozen=True)
class Description:
    repository_packages: tuple[str, ...]
    stacks: dict[str, Stack]

    def stack(self, name: str) -> Stack:
        if name not in self.stacks:
            raise StackError(f"unknown stack {name!r}; stacks: {', '.join(self.stacks)}")
        return self.stacks[name]


# ------------------------------------------------------------------------------------- values
def parse_value(value: Any) -> list[Part]:
    """Split a string value into text and substitution parts; other scalars become one text part."""
    if not isinstance(value, str):
        return [("text", format_scalar(value))]
    parts: list[Part] = []
    pos = 0
    for m in _TOKEN.finditer(value):
        if m.start() > pos:
            parts.append(("text", value[pos:m.start()]))
        parts.append(("arg" if m.group(1) == "arg" else "pkg", m.group(2)))
        pos = m.end()
    if pos < len(value) or not parts:
        parts.append(("text", value[pos:]))
    if "$(" in "".join(t for k, t in parts if k == "text"):
        raise StackError(f"unsupported substitution in {value!r}: only $(arg NAME) and "
                         f"$(find-pkg-share PKG) are known")
    return parts


def format_scalar(value: Any) -> str:
    """A YAML scalar as launch / rcl would read it back: bools lower case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise StackError(f"values must be scalars (str, int, float, bool), got {value!r}")


def is_constant(value: Any) -> bool:
    return all(kind == "text" for kind, _ in parse_value(value))


def referenced_args(value: Any) -> set[str]:
    return {name for kind, name in parse_value(value) if kind == "arg"}


def truthy(text: str, what: str) -> bool:
    """launch's IfCondition semantics: 'true'/'false' (and 1/0) only, anything else is an error."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise StackError(f"{what} must be 'true' or 'false', got {text!r}")


# ------------------------------------------------------------------------------------- loading
def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise StackError(f"{where}: `{key}` is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise StackError(f"{where}: `{key}` must be {kind}, got {type(value).__name__} {value!r}")
    return value


def load(path: str | Path = DESCRIPTION_PATH) -> Description:
    """Read and validate the description; raises `StackError` naming the field at fault."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise StackError(f"{path}: expected a mapping at the top level")
    if data.get("format_version") != FORMAT_VERSION:
        raise StackError(f"`format_version` must be {FORMAT_VERSION}, got {data.get('format_version')!r}")
    shared: dict[str, Argument] = {}
    for name, spec in _need(data, "arguments", dict, "description").items():
        where = f"arguments.{name}"
        if not isinstance(spec, dict):
            raise StackError(f"{where} must be a mapping, got {spec!r}")
        default = format_scalar(_need(spec, "default", (str, int, float, bool), where))
        description = _need(spec, "description", str, where)
        if not description.strip():
            raise StackError(f"{where}: `description` must not be empty")
        choices = tuple(spec.get("choices", ()))
        if choices and default not in choices:
            raise StackError(f"{where}: `default` must be one of {list(choices)}, got {default!r}")
        shared[name] = Argument(name, default, description, choices)
    stacks = {name: _load_stack(name, spec, shared)
              for name, spec in _need(data, "stacks", dict, "description").items()}
    return Description(tuple(data.get("repository_packages", ())), stacks)


def _load_stack(name: str, spec: dict[str, Any], shared: dict[str, Argument]) -> Stack:
    where = f"stacks.{name}"
    args: dict[str, Argument] = {}
    for arg in _need(spec, "arguments", list, where):
        if arg not in shared:
            raise StackError(f"{where}.arguments: {arg!r} is not declared under `arguments`")
        args[arg] = shared[arg]
    for arg, default in (spec.get("defaults") or {}).items():
        if arg not in args:
            raise StackError(f"{where}.defaults: {arg!r} is not an argument of this stack")
        a = args[arg]
        default = format_scalar(default)
        if a.choices and default not in a.choices:
            raise StackError(f"{where}.defaults.{arg} must be one of {list(a.choices)}, got {default!r}")
        args[arg] = Argument(a.name, default, a.description, a.choices)

    nodes = []
    for i, node in enumerate(_need(spec, "nodes", list, where)):
        nwhere = f"{where}.nodes[{i}]"
        unknown = set(node) - _NODE_KEYS
        if unknown:
            raise StackError(f"{nwhere}: unknown keys {sorted(unknown)}; known: {sorted(_NODE_KEYS)}")
        remaps = tuple(tuple(r) for r in node.get("remappings", ()))
        if any(len(r) != 2 for r in remaps):
            raise StackError(f"{nwhere}.remappings: each entry must be [from, to], got {list(remaps)}")
        nodes.append(NodeSpec(
            name=_need(node, "name", str, nwhere), package=_need(node, "package", str, nwhere),
            executable=_need(node, "executable", str, nwhere), namespace=node.get("namespace", ""),
            lifecycle=bool(node.get("lifecycle", False)), autostart=node.get("autostart", "false"),
            condition=node.get("condition"), parameter_files=tuple(node.get("parameter_files", ())),
            parameters=dict(node.get("parameters") or {}), remappings=remaps,
            arguments=tuple(node.get("arguments", ())), self_start=bool(node.get("self_start", False))))
        if nodes[-1].self_start and (not nodes[-1].lifecycle or nodes[-1].condition is not None):
            raise StackError(f"{nwhere}: `self_start` needs `lifecycle: true` and no `condition`")
    includes = tuple(IncludeSpec(_need(inc, "package", str, f"{where}.includes[{i}]"),
                                 _need(inc, "file", str, f"{where}.includes[{i}]"),
                                 dict(inc.get("arguments") or {}),
                                 _requirement(inc.get("requires"), f"{where}.includes[{i}].requires"))
                     for i, inc in enumerate(spec.get("includes") or ()))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise StackError(f"{where}: node names must be unique, got {names}")
    stack = Stack(name, str(spec.get("description", "")), args, tuple(nodes), includes)
    for arg in _all_referenced(stack) - set(args):
        raise StackError(f"{where}: $(arg {arg}) is used but {arg!r} is not in the stack's `arguments`")
    return stack


def _requirement(spec: Any, where: str) -> Requirement | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise StackError(f"{where} must be a mapping, got {spec!r}")
    req = Requirement(_need(spec, "version", str, where), _need(spec, "why", str, where),
                      _need(spec, "install", str, where))
    req.clauses()  # refuses an unreadable version range now, not at launch
    return req


def _values(node: NodeSpec) -> list[Any]:
    vals = [node.namespace, node.autostart, *node.parameter_files, *node.parameters.values(),
            *(x for r in node.remappings for x in r), *node.arguments]
    return vals + ([node.condition] if node.condition is not None else [])


def _all_referenced(stack: Stack) -> set[str]:
    refs: set[str] = set()
    for node in stack.nodes:
        for v in _values(node):
            refs |= referenced_args(v)
    for inc in stack.includes:
        for v in (inc.file, *inc.arguments.values()):
            refs |= referenced_args(v)
    return refs


# ------------------------------------------------------------------------------------- resolving
@dataclass(frozen=True)
class ResolvedNode:
    """One process as it will run: everything substituted, parameters as rcl will read them."""

    name: str
    package: str
    executable: str
    namespace: str
    lifecycle: bool
    autostart: bool
    parameter_files: tuple[str, ...]
    parameters: dict[str, Any]      # YAML-parsed values
    parameter_texts: dict[str, str]  # the substituted text (what `-p name:=text` carries)
    remappings: tuple[tuple[str, str], ...]
    arguments: tuple[str, ...]

    @property
    def fully_qualified_name(self) -> str:
        ns = self.namespace.strip("/")
        return f"/{ns}/{self.name}" if ns else f"/{self.name}"

    def ros_arguments(self) -> list[str]:
        """`--ros-args ...` as launch_ros passes them (name, namespace, files, overrides, remaps)."""
        out = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            out += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for path in self.parameter_files:
            out += ["--params-file", path]
        for key, text in self.parameter_texts.items():
            out += ["-p", f"{key}:={text if text != '' else chr(39) * 2}"]
        for src, dst in self.remappings:
            out += ["-r", f"{src}:={dst}"]
        return out


@dataclass(frozen=True)
class ResolvedInclude:
    package: str
    file: str
    arguments: dict[str, str]
    requires: Requirement | None = None


def argument_values(stack: Stack, given: Mapping[str, str]) -> dict[str, str]:
    """Defaults overlaid with `given`; unknown names and values outside `choices` are refused."""
    unknown = set(given) - set(stack.arguments)
    if unknown:
        raise StackError(f"stack {stack.name!r} has no argument(s) {sorted(unknown)}; "
                         f"arguments: {', '.join(stack.arguments)}")
    values = {name: a.default for name, a in stack.arguments.items()}
    for name, value in given.items():
        a = stack.arguments[name]
        if a.choices and value not in a.choices:
            raise StackError(f"argument `{name}` must be one of {list(a.choices)}, got {value!r}")
        values[name] = value
    return values


def substitute(value: Any, args: Mapping[str, str], find_share: Callable[[str], str]) -> str:
    out = []
    for kind, text in parse_value(value):
        if kind == "text":
            out.append(text)
        elif kind == "arg":
            if text not in args:
                raise StackError(f"$(arg {text}) has no value")
            out.append(args[text])
        else:
            out.append(find_share(text))
    return "".join(out)


def resolve(stack: Stack, given: Mapping[str, str],
            find_share: Callable[[str], str]) -> tuple[list[ResolvedNode], list[ResolvedInclude]]:
    """What the stack starts for these argument values; nodes whose condition is false are left out."""
    args = argument_values(stack, given)

    def sub(v: Any) -> str:
        return substitute(v, args, find_share)

    nodes = []
    for n in stack.nodes:
        if n.condition is not None and not truthy(sub(n.condition), f"condition of node {n.name!r}"):
            continue
        texts = {k: sub(v) for k, v in n.parameters.items()}
        autostart = n.lifecycle and truthy(sub(n.autostart), f"autostart of node {n.name!r}")
        arguments = tuple(sub(a) for a in n.arguments)
        if n.self_start:
            arguments += (SELF_START_FLAG,) if autostart else ()
            autostart = False
        nodes.append(ResolvedNode(
            name=n.name, package=n.package, executable=n.executable, namespace=sub(n.namespace),
            lifecycle=n.lifecycle, autostart=autostart,
            parameter_files=tuple(sub(f) for f in n.parameter_files),
            parameters={k: _yaml_value(t) for k, t in texts.items()}, parameter_texts=texts,
            remappings=tuple((sub(a), sub(b)) for a, b in n.remappings),
            arguments=arguments))
    includes = [ResolvedInclude(i.package, sub(i.file), {k: sub(v) for k, v in i.arguments.items()},
                                i.requires)
                for i in stack.includes]
    return nodes, includes


def _yaml_value(text: str) -> Any:
    """A parameter text as rcl and launch_ros read it (YAML); empty text stays an empty string."""
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# ------------------------------------------------------------------------------------- versions
def parse_version(text: str) -> tuple[int, ...]:
    """'3.4.0' -> (3, 4, 0); StackError for anything that is not dotted integers."""
    try:
        return tuple(int(x) for x in text.strip().split("."))
    except ValueError:
        raise StackError(f"not a version: {text!r}") from None


def installed_version(package: str) -> tuple[str, str] | None:
    """(version from its package.xml, share directory) of an installed ROS package, None if absent.

    Read through the ament index (AMENT_PREFIX_PATH), where `ros2 launch` and $(find-pkg-share)
    find the package too, so the version is that of the files the include would run.
    """
    import xml.etree.ElementTree as ET

    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = get_package_share_directory(package)
    except PackageNotFoundError:
        return None
    try:
        version = ET.parse(Path(share) / "package.xml").getroot().findtext("version") or ""
    except (OSError, ET.ParseError):
        version = ""
    return version.strip(), share


def include_problem(stack_name: str, package: str, requires: Requirement | None,
                    found: tuple[str, str] | None) -> str | None:
    """Why this stack cannot include `package` as installed (`found`, from `installed_version`), or None."""
    if requires is None:
        return None
    need = f"{package} {requires.version}"
    if found is None:
        return (f"stack {stack_name!r} needs {need}, and package {package!r} is not installed "
                f"(not on AMENT_PREFIX_PATH). {requires.install}")
    version, share = found
    try:
        ok = requires.admits(version)
    except StackError:
        ok = False
    if ok:
        return None
    return (f"stack {stack_name!r} needs {need}, but {package} {version or '(no version)'} is installed "
            f"({share}). {requires.why} {requires.install}")
