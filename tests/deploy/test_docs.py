"""The READMEs and deployment guides agree with `.env.example`, the Makefile and `compose.yaml`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
READMES = ["README.md", "README_en.md"]
DOCS = READMES + ["DEPLOYMENT_GUIDE.md", "DEPLOYMENT_GUIDE_en.md"]
EXAMPLE = (ROOT / ".env.example").read_text()

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", flags=re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# `make <target>` at the start of a shell command.
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+([A-Za-z0-9_.-]+)", flags=re.M)
# Service names of this stack wherever they occur: commands, hostnames (`name:port`, `http://name`).
SERVICE_LIKE = re.compile(r"(?<![\w.-])paddleocr-vlm?-[a-z0-9]+(?:-[a-z0-9]+)*(?![\w.-])")
COMPOSE_COMMAND = re.compile(r"docker[ -]compose\b([^\n#|;&)）]*)")
# `docker compose` options that take a value: before the subcommand, and after it.
GLOBAL_VALUE_OPTIONS = {"-p", "--project-name", "-f", "--file", "--profile", "--env-file",
                        "--project-directory", "--progress", "--ansi", "--parallel"}
COMMAND_VALUE_OPTIONS = {"-t", "--timeout", "--scale", "--tail", "--index", "-u", "--user", "-w", "--workdir",
                         "-e", "--env", "--entrypoint", "--wait-timeout", "--format", "--since", "--until"}
# Subcommands whose arguments are services.
SERVICE_COMMANDS = {"up", "down", "logs", "restart", "stop", "start", "ps", "build", "pull", "push", "rm",
                    "create", "kill", "pause", "unpause", "top", "events", "images", "port", "exec", "run"}


def read(name: str) -> str:
    return (ROOT / name).read_text()


def example_defaults() -> dict[str, str]:
    """Every variable assigned in `.env.example` (`NAME=value` or `# NAME=value`) and its default."""
    return dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", EXAMPLE, flags=re.M))


def code_spans(text: str) -> list[str]:
    """The fenced blocks and the inline code spans of a Markdown text."""
    blocks = FENCE.findall(text)
    return blocks + INLINE_CODE.findall(FENCE.sub("", text))


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (`!override`, `!reset`), read as the plain value they tag."""


def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_multi_constructor("!", _untagged)


def yaml_blocks(text: str) -> list[dict]:
    out = []
    for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, flags=re.M | re.S):
        loaded = yaml.load(match.group(1), Loader=ComposeLoader)
        if isinstance(loaded, dict):
            out.append(loaded)
    return out


def compose_services() -> set[str]:
    return set(yaml.safe_load(read("compose.yaml"))["services"])


def kubernetes_names() -> set[str]:
    """Names of the Kubernetes objects of deploy/k8s (and the Secret they read): the docs may name them."""
    names = set()
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        names.update(re.findall(r"\b(?:name|secretName|claimName): (paddleocr-[a-z0-9-]+)", path.read_text()))
    return names


def makefile_targets() -> set[str]:
    targets = set()
    for line in read("Makefile").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-/$() ]+?)\s*::?(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


@pytest.mark.parametrize("doc", READMES)
def test_every_variable_of_env_example_is_in_the_readme(doc):
    text = read(doc)
    assert example_defaults(), ".env.example assigns no variable"
    missing = [name for name in example_defaults()
               if not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", text)]
    assert missing == []


@pytest.mark.parametrize("doc", READMES)
def test_the_readme_names_the_upstream_aliases(doc):
    aliases = re.findall(r"\balias(?:es)?: ([A-Z][A-Z0-9_]+)", EXAMPLE)
    assert aliases
    text = read(doc)
    assert [alias for alias in aliases if alias not in text] == []


@pytest.mark.parametrize("doc", READMES)
def test_variable_tables_show_the_defaults_of_env_example(doc):
    """A table row `| `NAME` | default | ... |` shows `.env.example`'s default (empty there: no code span)."""
    defaults = example_defaults()
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", read(doc), flags=re.M)
    shown = {name: cell.strip() for name, cell in rows if name in defaults}
    assert set(shown) == set(defaults), "every variable has a table row"
    for name, cell in shown.items():
        if defaults[name]:
            assert cell.startswith(f"`{defaults[name]}`"), (name, cell, defaults[name])
        else:
            assert "`" not in cell, (name, cell)


@pytest.mark.parametrize("doc", READMES)
def test_the_readme_starts_with_make_up_and_make_test(doc):
    lines = read(doc).splitlines()
    assert lines[0].startswith("# "), "a title first"
    body = [line for line in lines[1:] if line.strip()]
    assert body[0].startswith("```"), "then, before anything else, the set-up commands"
    commands = [line.strip() for line in body[1:body.index("```", 1)]]
    assert [c.split("#")[0].strip() for c in commands[:2]] == ["make up", "make test"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_make_target_in_the_docs_exists(doc):
    targets = makefile_targets()
    assert {"up", "test"} <= targets
    named = {t for span in code_spans(read(doc)) for t in MAKE.findall(span) if not t.startswith("-")}
    assert sorted(named - targets) == []


def services_named(text: str) -> set[str]:
    """Services named in a document: this stack's names anywhere, and the arguments of `docker compose`."""
    names = set(SERVICE_LIKE.findall(text))
    for span in code_spans(text):
        for match in COMPOSE_COMMAND.finditer(span):
            words = match.group(1).split()
            command = None
            skip = False
            for word in words:
                if skip:
                    skip = False
                elif word.startswith("-"):
                    skip = word in (GLOBAL_VALUE_OPTIONS if command is None else COMMAND_VALUE_OPTIONS)
                elif command is None:
                    command = word
                elif command in SERVICE_COMMANDS and word not in {".", "..."} and "=" not in word:
                    names.add(word)
                    if command in {"exec", "run"}:
                        break  # the rest is the command run in the container
    return names


def services_added(text: str) -> set[str]:
    """Services the document's own `compose.override.yaml` examples define (rather than change)."""
    added = set()
    for block in yaml_blocks(text):
        for name, service in (block.get("services") or {}).items():
            if isinstance(service, dict) and ({"extends", "image", "build"} & set(service)):
                added.add(name)
    return added


@pytest.mark.parametrize("doc", DOCS)
def test_every_compose_service_in_the_docs_exists(doc):
    text = read(doc)
    services = compose_services() | kubernetes_names()
    assert sorted(services_named(text) - services - services_added(text)) == []


@pytest.mark.parametrize("doc", DOCS)
def test_override_examples_change_only_services_that_exist(doc):
    text = read(doc)
    services = compose_services()
    for block in yaml_blocks(text):
        for name, service in (block.get("services") or {}).items():
            if isinstance(service, dict) and not {"extends", "image", "build"} & set(service):
                assert name in services, name
            extends = service.get("extends") if isinstance(service, dict) else None
            if isinstance(extends, dict) and extends.get("file") == "compose.yaml":
                assert extends["service"] in services, name


def test_the_checks_see_what_the_docs_name():
    """The extractors find the names they are meant to find (so that the tests above can fail)."""
    sample = ("```bash\nmake up\ndocker compose --profile cpu up -d paddleocr-vl-api-cpu\n"
              "docker compose logs -f web && make nothing\n```\nsee `http://paddleocr-vlm-server:8080`, "
              "`docker save paddleocr-vl-api` and paddleocr-vl-images.tar.gz\n")
    assert services_named(sample) == {"paddleocr-vl-api-cpu", "web", "paddleocr-vlm-server",
                                      "paddleocr-vl-api"}
    assert {t for span in code_spans(sample) for t in MAKE.findall(span)} == {"up", "nothing"}
