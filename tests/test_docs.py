"""The documents say what the code does: generated blocks are up to date,
the config reference covers exactly the keys config.py accepts, and every
shipped config passes `exodiff check` without warnings."""
import importlib.util
import sys
from pathlib import Path

import pytest

from exodiff import config
from exodiff.config_schema import QUANTITY_UNITS, SCHEMA
from exodiff.units import KINDS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(spec)
sys.modules["gen_docs"] = gen_docs
spec.loader.exec_module(gen_docs)


def test_schema_documents_exactly_the_keys_config_accepts():
    accepted = {"run": config.RUN_KEYS, "medium": config.MEDIUM_KEYS, "domain": config.DOMAIN_KEYS,
                "cells": config.CELLS_KEYS, "cell_types.NAME": config.CELL_TYPE_KEYS,
                "vesicles.NAME": config.VESICLE_KEYS, "output": config.OUTPUT_KEYS,
                "check": config.CHECK_KEYS}
    assert [s.split(".")[0] for s in SCHEMA] == list(config.SECTIONS)
    for section, keys in accepted.items():
        assert [k.name for k in SCHEMA[section]] == list(keys), section
    # every quantity kind names a unit the config parser knows
    names = {name for name, _ in KINDS.values()} | {"reactivity"}
    assert set(QUANTITY_UNITS) <= names


def _documented_blocks(names):
    """(document, name, text in the document) of each generated block named."""
    found = []
    for doc in gen_docs.DOCUMENTS:
        for m in gen_docs.BLOCK.finditer(doc.read_text()):
            if m.group("name") in names:
                found.append((doc, m.group("name"), m.group("body")))
    return found


def test_fast_generated_blocks_are_up_to_date(monkeypatch):
    monkeypatch.chdir(ROOT)
    found = _documented_blocks(gen_docs.FAST)
    assert {name for _, name, _ in found} == set(gen_docs.FAST)  # each is used somewhere
    texts = gen_docs.render({name for _, name, _ in found})
    for doc, name, body in found:
        assert body == texts[name], f"{doc.name}: block {name} is stale: run python tools/gen_docs.py"


@pytest.mark.validate
def test_validate_quick_table_in_the_documents_is_todays(monkeypatch, quick_case):
    """The seeded `exodiff validate --quick` table, as the documents quote it
    (from the session's runs of the cases, which tests/test_validation.py
    checks too)."""
    monkeypatch.chdir(ROOT)
    found = _documented_blocks(gen_docs.SLOW)
    assert found
    text = gen_docs.validate_quick(lambda name, stepping: quick_case(name, "numba", stepping))
    for doc, name, body in found:
        assert body == text, f"{doc.name}: block {name} is stale: run python tools/gen_docs.py --slow"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_pass_check_without_warnings(path):
    if path.name.startswith("sweep"):
        pytest.skip("a sweep file, not a config")
    assert config.load_config(path).warnings == []
