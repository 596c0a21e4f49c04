"""The plugin system end to end, as a plugin author and a user see it.

- tests/example_plugin installed with pip is found by ``rlstruct tasks/plugins/rewards`` and
  its task works through ``rlstruct data`` and ``rlstruct score``;
- broken plugins (fake ``*.dist-info`` directories on ``PYTHONPATH``) are reported by name with
  their error while every other task keeps working; duplicate task names name both packages;
- ``RLSTRUCT_PLUGINS`` / ``RLSTRUCT_BLOCK_PLUGINS`` filter by entry point name;
- in-process registration (the ``plugin_manager`` / ``register_plugin`` fixtures);
- the tutorial's 40-line task (tests/example_plugin/minimal_kv.py) works through the API defaults,
  and ``rlstruct score`` prints ``null`` for the components it does not implement;
- ``rlstruct score`` input errors and output order.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from rlstruct import COMPONENTS, Parsed, Prompt, RewardComponent, Task, hookimpl
from rlstruct.plugins import PluginConflictError, PluginManager, UnknownTaskError
from rlstruct.reward import RewardSpec, score_inline

EXAMPLE_DIST, EXAMPLE_EP, EXAMPLE_TASK = "rlstruct-example-kv", "example-kv", "key-value"


# -- helpers ---------------------------------------------------------------------------------------
def write_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """Make ``site`` look like a pip install of ``dist``: a dist-info dir plus module files."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    body = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rlstruct]\n{body}")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


TOY_TASK_MODULE = '''
from rlstruct import Parsed, Prompt, Task, hookimpl


class ToyTask(Task):
    name = "TASK_NAME"
    description = "a toy task"

    def synthetic(self, split, size, seed):
        return [{"n": i} for i in range(size)]

    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": str(record["n"])}])

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        return 1.0

    def content(self, record, parsed):
        return 1.0

    def validity(self, record, parsed):
        return 1.0


@hookimpl
def register_tasks(register):
    register(ToyTask())
'''


def toy_task_module(task_name: str) -> str:
    """Source of a plugin module that registers one trivial task called ``task_name``."""
    return TOY_TASK_MODULE.replace("TASK_NAME", task_name)


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def expected_breakdown(components: dict[str, float]) -> float:
    """Equal default weights: the reward is the plain mean of the components."""
    return sum(components.values()) / len(components)


def assert_breakdown(out: dict[str, Any], components: dict[str, float]) -> None:
    assert set(out) == {"reward", "components", "error"}
    assert list(out["components"]) == list(components)
    for name, value in components.items():
        assert out["components"][name] == pytest.approx(value, abs=1e-12), name
    assert out["reward"] == pytest.approx(expected_breakdown(components), abs=1e-12)
    assert out["error"] is None


def score_line(record: dict[str, Any], completion: str) -> str:
    return json.dumps({"record": record, "completion": completion})


# -- the installed example plugin ----------------------------------------------------------------
@pytest.fixture(scope="module")
def example_listing(run_cli, example_plugin_site) -> dict[str, Any]:
    """``tasks``, ``plugins`` and ``rewards`` (JSON) with the example plugin installed."""
    out = {}
    for command in ("tasks", "plugins", "rewards"):
        result = run_cli(command, "--json", pythonpath=[example_plugin_site])
        assert result.returncode == 0, result.stderr
        out[command] = json.loads(result.stdout)
    return out


def test_tasks_json_lists_the_installed_example_task(example_listing, example_plugin_module):
    rows = example_listing["tasks"]
    assert isinstance(rows, list)
    assert all({"name", "plugin", "description"} <= set(row) for row in rows)
    row = by_name(rows)[EXAMPLE_TASK]
    assert row["plugin"] == EXAMPLE_EP
    assert row["description"] == example_plugin_module.KeyValueTask.description


def test_plugins_json_names_distribution_and_version(example_listing):
    info = by_name(example_listing["plugins"])[EXAMPLE_EP]
    assert info["distribution"] == EXAMPLE_DIST
    assert info["version"] == "0.1.0"
    assert info["module"] == "rlstruct_example_kv"
    assert info["tasks"] == [EXAMPLE_TASK]
    assert info["rewards"] == ["no-shouting"]
    assert info["error"] is None


def test_rewards_json_lists_the_custom_component(example_listing):
    rewards = example_listing["rewards"]
    assert rewards["hierarchical"] == list(COMPONENTS)
    row = by_name(rewards["extras"])["no-shouting"]
    assert row["plugin"] == EXAMPLE_EP
    assert row["defaults"] == {"min_letters": 1}
    assert "upper case" in row["description"]


def test_tasks_text_output_names_the_plugin(run_cli, example_plugin_site):
    result = run_cli("tasks", pythonpath=[example_plugin_site])
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(EXAMPLE_TASK))
    assert f"[plugin {EXAMPLE_EP}]" in line


def test_data_piped_into_score_gives_exact_components(run_cli, example_plugin_site):
    data = run_cli("data", "--task", EXAMPLE_TASK, "--limit", "3", pythonpath=[example_plugin_site])
    assert data.returncode == 0, data.stderr
    records = json_lines(data.stdout)
    assert len(records) == 3
    lines, expected = [], []
    for record in records:
        n = len(record["keys"])
        reference = "\n".join(f"{k}={record['facts'][k]}" for k in record["keys"])
        first = record["keys"][0]
        wrong = reference.replace(f"{first}={record['facts'][first]}", f"{first}=wrong", 1)
        lines += [
            score_line(record, reference),
            score_line(record, reference + "\nbogus_key=1"),  # a key nobody asked for
            score_line(record, wrong),  # one value differs from the reference
        ]
        expected += [
            dict.fromkeys(COMPONENTS, 1.0),
            {"structure": 1.0, "format": n / (n + 1), "content": 1.0, "validity": 1.0},
            {"structure": 1.0, "format": 1.0, "content": (n - 1) / n, "validity": 1.0},
        ]
    lines.append(score_line(records[0], "I don't know."))
    expected.append(dict.fromkeys(COMPONENTS, 0.0))

    scored = run_cli("score", "--task", EXAMPLE_TASK, "-", input="\n".join(lines) + "\n", pythonpath=[example_plugin_site])
    assert scored.returncode == 0, scored.stderr
    outputs = json_lines(scored.stdout)
    assert len(outputs) == len(lines)
    for out, components in zip(outputs, expected):
        assert_breakdown(out, components)


def test_score_with_config_adds_the_no_shouting_component(run_cli, example_plugin_site, tmp_path):
    config = tmp_path / "kv.toml"
    config.write_text(
        '[task]\nname = "key-value"\n\n[model]\nname_or_path = "not-loaded-by-score"\n\n'
        "[reward.extras.no-shouting]\nweight = 1.0\nmin_letters = 1\n"
    )
    record = {"facts": {"city": "oslo", "colour": "teal", "fruit": "fig"}, "keys": ["city", "colour"]}
    reference = "city=oslo\ncolour=teal"
    half_shouted = "city=OSLO\ncolour=teal"  # 4 of 18 letters are upper case
    shouted = reference.upper()  # keys are no longer the requested ones
    lines = [score_line(record, c) for c in (reference, half_shouted, shouted)]
    result = run_cli("score", "--task", EXAMPLE_TASK, "--config", str(config), "-", input="\n".join(lines), pythonpath=[example_plugin_site])
    assert result.returncode == 0, result.stderr
    outputs = json_lines(result.stdout)
    names = [*COMPONENTS, "no-shouting"]
    assert_breakdown(outputs[0], dict(zip(names, [1.0, 1.0, 1.0, 1.0, 1.0])))
    assert_breakdown(outputs[1], dict(zip(names, [1.0, 1.0, 0.5, 1.0, 1 - 4 / 18])))
    assert_breakdown(outputs[2], dict(zip(names, [1.0, 0.0, 0.0, 0.0, 0.0])))


def test_score_config_with_unknown_component_parameter_names_the_key(run_cli, example_plugin_site, tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text(
        '[task]\nname = "key-value"\n[model]\nname_or_path = "x"\n[reward.extras.no-shouting]\nmin_leters = 3\n'
    )
    result = run_cli("score", "--task", EXAMPLE_TASK, "--config", str(config), "-", input="", pythonpath=[example_plugin_site])
    assert result.returncode == 2  # a config error
    assert "reward.extras.no-shouting.min_leters" in result.stderr
    assert "min_letters" in result.stderr


def test_unknown_synthetic_split_is_a_clean_error(run_cli, example_plugin_site):
    """A task's generator rejecting a split must come out as `rlstruct: error:` (exit 1), not a traceback.

    Core bug: data.load_records lets the task's ValueError escape; the CLI prints a traceback.
    """
    result = run_cli("data", "--task", EXAMPLE_TASK, "--split", "nonsense", "--limit", "1", pythonpath=[example_plugin_site])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "rlstruct: error:" in result.stderr and "nonsense" in result.stderr


# -- the example plugin itself (tutorial code must be correct code) -------------------------------
@pytest.fixture(scope="module")
def kv_task(example_plugin_module) -> Task:
    return example_plugin_module.KeyValueTask()


def test_example_reference_completions_score_one(kv_task, example_plugin_module):
    spec = RewardSpec.build(kv_task, {"no-shouting": example_plugin_module.NO_SHOUTING}, extras={"no-shouting": {}})
    for split in ("train", "test"):
        for record in kv_task.synthetic(split, 200, seed=3):
            assert kv_task.normalize_record(record) == record
            json.dumps(record)
            breakdown = score_inline(kv_task, spec, record, kv_task.reference_completion(record))
            assert breakdown.reward == 1.0, (record, breakdown)
            assert not breakdown.errors


def test_example_generator_is_seeded_and_splits_are_disjoint(kv_task):
    assert kv_task.synthetic("train", 50, 0) == kv_task.synthetic("train", 50, 0)
    assert kv_task.synthetic("train", 50, 0) != kv_task.synthetic("train", 50, 1)

    def prompts(split: str) -> set[str]:
        return {kv_task.build_prompt(r).messages[-1]["content"] for r in kv_task.synthetic(split, 300, 0)}

    train, test, validation = prompts("train"), prompts("test"), prompts("validation")
    assert len(train) == 300
    assert not train & test and not train & validation and not test & validation


HOSTILE = [
    "",
    "   \n\t ",
    "[" * 100_000,
    "x" * 10_000_000,
    "a=" + "9" * 100_000,
    "colour=NaN\ncity=Infinity",
    "city=\udcff",
    b"city=\xff\xfe".decode("utf-8", errors="surrogateescape"),
    "=\n==\n=x",
    "```\ncity=oslo\n```",
]


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_example_task_survives_hostile_output(kv_task, example_plugin_module, completion):
    record = {"facts": {"city": "oslo", "colour": "teal"}, "keys": ["city", "colour"]}
    spec = RewardSpec.build(kv_task, {"no-shouting": example_plugin_module.NO_SHOUTING}, extras={"no-shouting": {}})
    start = time.perf_counter()
    breakdown = score_inline(kv_task, spec, record, completion)
    assert time.perf_counter() - start < 1.0
    assert 0.0 <= breakdown.reward <= 1.0
    assert all(0.0 <= v <= 1.0 for v in breakdown.components.values())
    assert not breakdown.errors


def test_example_partial_credit_is_honest(kv_task):
    record = {"facts": {"city": "oslo", "colour": "teal"}, "keys": ["city", "colour"]}

    def components(completion: str) -> list[float]:
        parsed = kv_task.structure(record, completion)
        if parsed.score == 0:
            return [0.0]
        return [parsed.score, *(getattr(kv_task, c)(record, parsed.value) for c in COMPONENTS[1:])]

    assert components("```\ncity=oslo\ncolour=teal\n```")[0] == pytest.approx(0.5)  # fences are not key=value
    assert components("city=oslo\ncity=oslo\ncolour=teal")[1] == pytest.approx(2 / 3)  # repeated key
    assert components("city=oslo")[1:3] == [0.5, 0.5]  # one of two keys
    assert components("city=\ncolour=" + "x" * 100)[3] == 0.0  # empty and overlong values


def test_example_normalize_record_names_the_key(kv_task):
    from rlstruct import RecordError

    with pytest.raises(RecordError, match=r"keys\[1\]"):
        kv_task.normalize_record({"facts": {"city": "oslo"}, "keys": ["city", "planet"]})
    with pytest.raises(RecordError, match="facts.city"):
        kv_task.normalize_record({"facts": {"city": ""}, "keys": ["city"]})
    with pytest.raises(RecordError, match="'facts'"):
        kv_task.normalize_record({"keys": ["city"]})


def test_no_shouting_component(example_plugin_module):
    score = example_plugin_module.no_shouting
    assert score({}, "all quiet", {"min_letters": 1}) == 1.0
    assert score({}, "LOUD", {"min_letters": 1}) == 0.0
    assert score({}, "AbCd", {"min_letters": 1}) == 0.5
    assert score({}, "123 !!", {"min_letters": 1}) == 1.0  # no letters: nothing shouted
    assert score({}, "OK", {"min_letters": 3}) == 1.0  # too short to judge
    assert score({}, "Ⅷ viii", {"min_letters": 1}) == 1.0  # a Roman numeral is not a letter
    assert 0.0 <= score({}, "É" * 10_000_000, {"min_letters": 0}) <= 1.0


# -- the tutorial's minimal task (tests/example_plugin/minimal_kv.py) ---------------------------------
MINIMAL_SOURCE = Path(__file__).parent / "example_plugin" / "minimal_kv.py"


@pytest.fixture(scope="module")
def minimal_site(tmp_path_factory) -> Path:
    """The minimal task installed as a plugin (a dist-info with its entry point, like pip makes)."""
    site = tmp_path_factory.mktemp("minimal_site")
    write_dist(site, "rlstruct-minimal-kv", {"minimal-kv": "minimal_kv"}, {"minimal_kv": MINIMAL_SOURCE.read_text()})
    return site


@pytest.fixture
def minimal_task(plugin_manager, register_plugin, minimal_site, monkeypatch) -> Task:
    monkeypatch.syspath_prepend(str(minimal_site))
    import minimal_kv

    register_plugin(plugin_manager, minimal_kv, "minimal-kv")
    return plugin_manager.task(EXAMPLE_TASK)


def test_minimal_task_is_about_forty_lines():
    lines = MINIMAL_SOURCE.read_text().splitlines()
    assert len(lines) <= 50 and len([line for line in lines if line.strip()]) <= 40  # the tutorial says so


def test_minimal_task_reference_scores_one_on_what_it_implements(minimal_task):
    spec = RewardSpec.build(minimal_task, {})
    assert spec.weights == {"structure": 1.0, "format": 0.0, "content": 1.0, "validity": 0.0}
    for split in ("train", "validation", "test"):
        for record in minimal_task.synthetic(split, 100, seed=1):
            breakdown = score_inline(minimal_task, spec, record, minimal_task.reference_completion(record))
            assert breakdown.reward == 1.0 and not breakdown.errors
            assert breakdown.components == {"structure": 1.0, "format": None, "content": 1.0, "validity": None}


def test_minimal_task_splits_are_seeded_and_disjoint(minimal_task):
    def prompts(split: str) -> list[str]:
        return [minimal_task.build_prompt(r).messages[-1]["content"] for r in minimal_task.synthetic(split, 200, 0)]

    train, validation, test = prompts("train"), prompts("validation"), prompts("test")
    assert len(set(train)) == len(set(validation)) == len(set(test)) == 200
    assert not set(train) & set(test) and not set(validation) & (set(train) | set(test))
    assert minimal_task.synthetic("test", 5, 0) == minimal_task.synthetic("test", 5, 0)
    assert minimal_task.build_prompt(minimal_task.synthetic("test", 1, 0)[0]).messages[0]["role"] == "system"


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_minimal_task_survives_hostile_output(minimal_task, completion):
    record = {"facts": {"city": "oslo", "colour": "teal"}, "keys": ["city", "colour"]}
    start = time.perf_counter()
    breakdown = score_inline(minimal_task, RewardSpec.build(minimal_task, {}), record, completion)
    assert time.perf_counter() - start < 1.0
    assert 0.0 <= breakdown.reward <= 1.0 and not breakdown.errors
    assert breakdown.components["format"] is None and breakdown.components["validity"] is None


def test_score_prints_null_for_components_the_task_does_not_implement(run_cli, minimal_site):
    """`rlstruct score` keeps all four component keys; the ones the task lacks are null."""
    record = {"facts": {"city": "oslo", "colour": "teal"}, "keys": ["city", "colour"]}
    lines = [score_line(record, c) for c in ("city=oslo\ncolour=teal", "city=oslo\ncolour=red\nnoise", "no")]
    for workers in ("0", "2"):  # in-process and in the sandbox's worker processes
        result = run_cli("score", "--task", EXAMPLE_TASK, "--workers", workers, "-", input="\n".join(lines),
                         pythonpath=[minimal_site], env={"RLSTRUCT_PLUGINS": "minimal-kv"})
        assert result.returncode == 0, result.stderr
        outputs = json_lines(result.stdout)
        assert [list(out["components"]) for out in outputs] == [list(COMPONENTS)] * 3
        assert [out["components"] for out in outputs] == [
            {"structure": 1.0, "format": None, "content": 1.0, "validity": None},
            {"structure": pytest.approx(2 / 3), "format": None, "content": 0.5, "validity": None},
            {"structure": 0.0, "format": None, "content": 0.0, "validity": None},
        ]
        assert [out["reward"] for out in outputs] == [1.0, pytest.approx((2 / 3 + 0.5) / 2), 0.0]
        assert all(out["error"] is None for out in outputs)


def test_config_weight_for_a_component_the_task_lacks_is_a_clean_error(run_cli, minimal_site, tmp_path):
    config = tmp_path / "kv.toml"
    config.write_text('[task]\nname = "key-value"\n[model]\nname_or_path = "x"\n[reward.weights]\nformat = 1.0\n')
    result = run_cli("score", "--task", EXAMPLE_TASK, "--config", str(config), "-", input="",
                     pythonpath=[minimal_site], env={"RLSTRUCT_PLUGINS": "minimal-kv"})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "reward.weights.format" in result.stderr and "has no format component" in result.stderr


# -- broken plugins ----------------------------------------------------------------------------------
BROKEN = {
    # entry point name: (distribution, entry point value, module sources, texts the error must contain)
    "broken-missing": ("rlstruct-broken-missing", "rlstruct_test_no_such_module", {}, ["failed to import", "No module named 'rlstruct_test_no_such_module'"]),
    "broken-import": (
        "rlstruct-broken-import",
        "rlstruct_test_broken_import",
        {"rlstruct_test_broken_import": "raise RuntimeError('exploded while importing')\n"},
        ["failed to import", "RuntimeError", "exploded while importing"],
    ),
    "broken-register": (
        "rlstruct-broken-register",
        "rlstruct_test_broken_register",
        {
            "rlstruct_test_broken_register": """
            from rlstruct import hookimpl

            @hookimpl
            def register_tasks(register):
                raise ValueError("register_tasks exploded")
            """
        },
        ["register_tasks failed", "ValueError", "register_tasks exploded"],
    ),
    "broken-not-a-task": (
        "rlstruct-broken-not-a-task",
        "rlstruct_test_not_a_task",
        {
            "rlstruct_test_not_a_task": """
            from rlstruct import hookimpl

            @hookimpl
            def register_tasks(register):
                register("key-value")
            """
        },
        ["register_tasks failed", "TypeError", "Task instance"],
    ),
    "broken-hook-name": (
        "rlstruct-broken-hook-name",
        "rlstruct_test_hook_name",
        {
            "rlstruct_test_hook_name": """
            from rlstruct import hookimpl

            @hookimpl
            def register_task(register):  # misspelled: the hook is register_tasks
                pass
            """
        },
        ["register_task"],
    ),
    "broken-hook-argument": (
        "rlstruct-broken-hook-argument",
        "rlstruct_test_hook_argument",
        {
            "rlstruct_test_hook_argument": """
            from rlstruct import hookimpl

            @hookimpl
            def register_tasks(registry):  # the argument is called register
                pass
            """
        },
        ["invalid plugin", "registry"],
    ),
}


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("broken_plugins")
    for name, (dist, value, modules, _) in BROKEN.items():
        write_dist(site, dist, {name: value}, modules)
    return site


@pytest.fixture(scope="module")
def broken_listing(run_cli, example_plugin_site, broken_site) -> dict[str, dict[str, Any]]:
    result = run_cli("plugins", "--json", pythonpath=[broken_site, example_plugin_site])
    assert result.returncode == 0, result.stderr
    return by_name(json.loads(result.stdout))


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_plugin_is_reported_by_name_with_its_error(broken_listing, name):
    dist, value, _, texts = BROKEN[name]
    info = broken_listing.get(name)
    assert info is not None, f"plugin {name!r} missing from `rlstruct plugins --json`"
    assert info["distribution"] == dist
    assert info["module"] == value
    assert info["error"], f"plugin {name!r} is broken but reported no error"
    for text in texts:
        assert text in info["error"]
    assert info["tasks"] == []


def test_broken_plugins_do_not_hide_working_ones(broken_listing):
    assert broken_listing[EXAMPLE_EP]["error"] is None
    assert broken_listing[EXAMPLE_EP]["tasks"] == [EXAMPLE_TASK]
    assert broken_listing["core"]["error"] is None
    assert broken_listing["core"]["rewards"] == ["length"]


def test_tasks_keep_working_next_to_broken_plugins(run_cli, example_plugin_site, broken_site):
    clean = run_cli("tasks", "--json", pythonpath=[example_plugin_site])
    broken = run_cli("tasks", "--json", pythonpath=[broken_site, example_plugin_site])
    assert broken.returncode == 0
    assert json.loads(broken.stdout) == json.loads(clean.stdout)
    for name in ("broken-missing", "broken-import", "broken-register"):
        assert f"plugin {name!r}" in broken.stderr  # warned on stderr, by name

    builtin = next(row["name"] for row in json.loads(clean.stdout) if row["name"] != EXAMPLE_TASK)
    for task in (EXAMPLE_TASK, builtin):  # same records, broken neighbours or not
        args = ("data", "--task", task, "--limit", "2")
        env = {"PYTHONHASHSEED": "0"}  # compare like with like even if a generator used hash()
        ok = run_cli(*args, pythonpath=[example_plugin_site], env=env)
        with_broken = run_cli(*args, pythonpath=[broken_site, example_plugin_site], env=env)
        assert (with_broken.returncode, with_broken.stdout) == (ok.returncode, ok.stdout), task
        if task == EXAMPLE_TASK:
            assert ok.returncode == 0 and len(json_lines(ok.stdout)) == 2


def test_blocking_a_broken_plugin_silences_it(run_cli, broken_site):
    blocked = ",".join(BROKEN)
    result = run_cli("plugins", "--json", pythonpath=[broken_site], env={"RLSTRUCT_BLOCK_PLUGINS": blocked})
    names = {row["name"] for row in json.loads(result.stdout)}
    assert not names & set(BROKEN)
    assert all(row["error"] is None for row in json.loads(result.stdout))


# -- the same task name twice ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conflict_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("conflict_plugins")
    write_dist(site, "rlstruct-dup-a", {"dup-a": "rlstruct_test_dup_a"}, {"rlstruct_test_dup_a": toy_task_module("dup-task")})
    write_dist(site, "rlstruct-dup-b", {"dup-b": "rlstruct_test_dup_b"}, {"rlstruct_test_dup_b": toy_task_module("dup-task")})
    return site


@pytest.mark.parametrize("command", ["score", "data"])
def test_duplicate_task_name_names_both_distributions(run_cli, conflict_site, command):
    args = ("score", "--task", "dup-task", "-") if command == "score" else ("data", "--task", "dup-task", "--limit", "1")
    result = run_cli(*args, pythonpath=[conflict_site], input=score_line({"n": 1}, "x"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "rlstruct: error:" in result.stderr
    assert "'dup-task'" in result.stderr
    assert "rlstruct-dup-a" in result.stderr and "rlstruct-dup-b" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_task_name_leaves_other_tasks_usable(run_cli, conflict_site, example_plugin_site):
    result = run_cli("tasks", "--json", pythonpath=[conflict_site, example_plugin_site])
    assert result.returncode == 0
    names = [row["name"] for row in json.loads(result.stdout)]
    assert "dup-task" not in names and EXAMPLE_TASK in names
    plugins = by_name(json.loads(run_cli("plugins", "--json", pythonpath=[conflict_site]).stdout))
    errors = [plugins[n]["error"] or "" for n in ("dup-a", "dup-b")]
    assert any("conflict" in e and "rlstruct-dup-a" in e and "rlstruct-dup-b" in e for e in errors)


def test_same_entry_point_name_in_two_distributions_is_not_silently_dropped(run_cli, tmp_path):
    """Two distributions both declaring entry point ``shadow``: both tasks load, or an error names both.

    Core bug: PluginManager.load_entry_points skips any later entry point whose *name* was seen,
    so one distribution silently disappears (its task is simply unknown).
    """
    write_dist(tmp_path, "rlstruct-shadow-a", {"shadow": "rlstruct_test_shadow_a"}, {"rlstruct_test_shadow_a": toy_task_module("shadow-a")})
    write_dist(tmp_path, "rlstruct-shadow-b", {"shadow": "rlstruct_test_shadow_b"}, {"rlstruct_test_shadow_b": toy_task_module("shadow-b")})
    plugins = json.loads(run_cli("plugins", "--json", pythonpath=[tmp_path]).stdout)
    tasks = {t for row in plugins for t in row["tasks"]}
    errors = " ".join(row["error"] or "" for row in plugins)
    both_loaded = {"shadow-a", "shadow-b"} <= tasks
    both_named = "rlstruct-shadow-a" in errors and "rlstruct-shadow-b" in errors
    assert both_loaded or both_named, [row for row in plugins if row["name"] == "shadow"]


# -- allow / block by entry point name -----------------------------------------------------------------
def test_allow_list_loads_only_the_named_plugins(run_cli, example_plugin_site):
    result = run_cli("plugins", "--json", pythonpath=[example_plugin_site], env={"RLSTRUCT_PLUGINS": f" {EXAMPLE_EP} , core"})
    assert [row["name"] for row in json.loads(result.stdout)] == ["core", EXAMPLE_EP]
    tasks = run_cli("tasks", "--json", pythonpath=[example_plugin_site], env={"RLSTRUCT_PLUGINS": EXAMPLE_EP})
    assert [row["name"] for row in json.loads(tasks.stdout)] == [EXAMPLE_TASK]


def test_empty_allow_list_loads_nothing(monkeypatch):
    monkeypatch.setenv("RLSTRUCT_PLUGINS", "")
    pm = PluginManager()
    assert pm.plugins() == [] and pm.tasks == {} and pm.rewards == {}


def test_block_list_skips_the_named_plugin(run_cli, example_plugin_site):
    env = {"RLSTRUCT_BLOCK_PLUGINS": EXAMPLE_EP}
    plugins = json.loads(run_cli("plugins", "--json", pythonpath=[example_plugin_site], env=env).stdout)
    names = [row["name"] for row in plugins]
    assert EXAMPLE_EP not in names and "core" in names
    result = run_cli("data", "--task", EXAMPLE_TASK, "--limit", "1", pythonpath=[example_plugin_site], env=env)
    assert result.returncode == 2  # an unknown task name is a usage error
    assert f"unknown task {EXAMPLE_TASK!r}" in result.stderr


def test_block_list_in_process(monkeypatch, example_plugin_site):
    monkeypatch.delenv("RLSTRUCT_PLUGINS", raising=False)
    monkeypatch.delenv("RLSTRUCT_BLOCK_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(example_plugin_site))
    assert EXAMPLE_TASK in PluginManager().tasks
    monkeypatch.setenv("RLSTRUCT_BLOCK_PLUGINS", f"{EXAMPLE_EP},core")
    pm = PluginManager()
    assert EXAMPLE_TASK not in pm.tasks and "length" not in pm.rewards
    assert {i.name for i in pm.plugins()}.isdisjoint({EXAMPLE_EP, "core"})


# -- unknown tasks ---------------------------------------------------------------------------------------
def test_unknown_task_lists_known_tasks(run_cli, example_plugin_site, example_listing):
    result = run_cli("data", "--task", "no-such-task", pythonpath=[example_plugin_site])
    assert result.returncode == 2
    assert "unknown task 'no-such-task'" in result.stderr
    for row in example_listing["tasks"]:
        assert row["name"] in result.stderr


def test_unknown_task_in_process(plugin_manager, register_plugin, example_plugin_module):
    with pytest.raises(UnknownTaskError, match="none"):
        plugin_manager.task("key-value")
    register_plugin(plugin_manager, example_plugin_module, EXAMPLE_EP)
    with pytest.raises(UnknownTaskError, match="known tasks: key-value"):
        plugin_manager.task("kv")


# -- in-process registration (how a plugin author tests a plugin) ------------------------------------
class ToyPlugin:
    """A plugin object: hook implementations as methods."""

    class Echo(Task):
        name = "toy-echo"
        description = "repeat the prompt"

        def build_prompt(self, record):
            return Prompt(messages=[{"role": "user", "content": record["text"]}])

        def structure(self, record, completion):
            return Parsed(float(bool(completion.strip())), completion.strip())

        def format(self, record, parsed):
            return 1.0

        def content(self, record, parsed):
            return float(parsed == record["text"])

        def validity(self, record, parsed):
            return 1.0

    @hookimpl
    def register_tasks(self, register: Callable[[Task], None]) -> None:
        register(self.Echo())

    @hookimpl
    def register_rewards(self, register: Callable[[RewardComponent], None]) -> None:
        register(RewardComponent("toy-short", "short answers", lambda r, c, p: float(len(c) < p["n"]), {"n": 10}))


def test_register_and_unregister_in_process(plugin_manager, register_plugin):
    info = register_plugin(plugin_manager, ToyPlugin(), "toy")
    assert info.error is None
    assert plugin_manager.tasks.keys() == {"toy-echo"}
    assert plugin_manager.rewards.keys() == {"toy-short"}
    assert plugin_manager.task_plugin("toy-echo").name == "toy"
    assert [(i.name, i.tasks, i.rewards) for i in plugin_manager.plugins()] == [("toy", ["toy-echo"], ["toy-short"])]

    task = plugin_manager.task("toy-echo")
    spec = RewardSpec.build(task, plugin_manager.rewards, extras={"toy-short": {"n": 5}})
    breakdown = score_inline(task, spec, {"text": "hi"}, "hi")
    assert breakdown.components == {"structure": 1.0, "format": 1.0, "content": 1.0, "validity": 1.0, "toy-short": 1.0}

    with pytest.raises(ValueError, match="already registered"):
        plugin_manager.register(ToyPlugin(), name="toy")

    plugin_manager.unregister("toy")
    assert plugin_manager.tasks == {} and plugin_manager.rewards == {} and plugin_manager.plugins() == []
    with pytest.raises(UnknownTaskError):
        plugin_manager.task("toy-echo")
    register_plugin(plugin_manager, ToyPlugin(), "toy")  # the name is free again
    assert "toy-echo" in plugin_manager.tasks


def test_fixture_unregisters_after_the_test(plugin_manager, register_plugin, example_plugin_module):
    register_plugin(plugin_manager, example_plugin_module, EXAMPLE_EP)
    assert EXAMPLE_TASK in plugin_manager.tasks
    assert "no-shouting" in plugin_manager.rewards


def test_in_process_conflict_names_both_plugins(plugin_manager, register_plugin):
    register_plugin(plugin_manager, ToyPlugin(), "toy-one")
    register_plugin(plugin_manager, ToyPlugin(), "toy-two")
    with pytest.raises(PluginConflictError) as excinfo:
        plugin_manager.task("toy-echo")
    assert "toy-one" in str(excinfo.value) and "toy-two" in str(excinfo.value)
    plugin_manager.unregister("toy-two")
    assert plugin_manager.task("toy-echo").name == "toy-echo"


def test_in_process_misspelled_hook_is_reported(plugin_manager, register_plugin):
    """Core bug: pluggy accepts a hookimpl for an unknown hook; the manager must report it."""

    class Misspelled:
        @hookimpl
        def register_task(self, register):
            register(ToyPlugin.Echo())

    info = register_plugin(plugin_manager, Misspelled(), "misspelled")
    assert info.error and "register_task" in info.error
    assert plugin_manager.errors() == [info]


# -- rlstruct score: input errors, -o, order ---------------------------------------------------------
@pytest.fixture(scope="module")
def kv_record(example_plugin_module) -> dict[str, Any]:
    return example_plugin_module.KeyValueTask().synthetic("train", 1, 0)[0]


def run_score(run_cli, site, payload: str | bytes, *extra: str):
    return run_cli("score", "--task", EXAMPLE_TASK, *extra, "-", input=payload, pythonpath=[site])


def test_score_malformed_json_names_the_line(run_cli, example_plugin_site, kv_record):
    payload = score_line(kv_record, "a=b") + "\n\n" + '{"record": {"facts": \n'
    result = run_score(run_cli, example_plugin_site, payload)
    assert result.returncode == 1
    assert "<stdin>:3: invalid JSON" in result.stderr
    assert result.stdout == ""


def test_score_missing_key_names_it(run_cli, example_plugin_site, kv_record):
    result = run_score(run_cli, example_plugin_site, json.dumps({"record": kv_record}))
    assert result.returncode == 1
    assert "<stdin>:1: missing key 'completion'" in result.stderr


def test_score_invalid_record_names_line_and_key(run_cli, example_plugin_site, kv_record):
    bad = dict(kv_record, keys=["not_a_fact"])
    result = run_score(run_cli, example_plugin_site, score_line(kv_record, "") + "\n" + score_line(bad, ""))
    assert result.returncode == 1
    assert "<stdin>:2: record:" in result.stderr and "keys[0]" in result.stderr


def test_score_non_utf8_bytes_name_the_line(run_cli, example_plugin_site, kv_record):
    good = score_line(kv_record, "x=y").encode()
    payload = good + b"\n" + good + b"\n" + b'{"record": {}, "completion": "\xff\xfe"}\n'
    result = run_score(run_cli, example_plugin_site, payload)
    assert result.returncode == 1
    assert "<stdin>:3: not valid UTF-8" in result.stderr


def test_score_missing_input_file_is_named(run_cli, example_plugin_site):
    result = run_cli("score", "--task", EXAMPLE_TASK, "no-such-input.jsonl", pythonpath=[example_plugin_site])
    assert result.returncode == 1
    assert "no-such-input.jsonl" in result.stderr


def test_score_output_file_and_order_of_300_lines(run_cli, example_plugin_site, kv_task, tmp_path):
    records = kv_task.synthetic("train", 300, 7)
    completions = []
    for i, record in enumerate(records):
        reference = kv_task.reference_completion(record)
        completions.append([reference, reference + "\nextra=1", "nothing", reference.split("\n")[0], "a=b\n" * (i % 5)][i % 5])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(score_line(r, c) + "\n" for r, c in zip(records, completions)))
    out = tmp_path / "OUT.jsonl"
    result = run_cli("score", "--task", EXAMPLE_TASK, str(src), "-o", str(out), pythonpath=[example_plugin_site])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    got = json_lines(out.read_text())
    assert len(got) == 300
    spec = RewardSpec.build(kv_task, {})
    for line, (record, completion) in enumerate(zip(records, completions)):
        assert got[line] == score_inline(kv_task, spec, record, completion).to_json(), line
