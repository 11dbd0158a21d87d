"""Security review as tests: no shell, no unpickling, list arguments, literal paths."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "s2m_geo").rglob("*.py")) + sorted((ROOT / "qgis_plugin").rglob("*.py"))


def _calls(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_sources_found():
    assert len(SOURCES) > 20


def test_no_shell_and_no_os_system():
    for path in SOURCES:
        for call, name in _calls(path):
            assert name not in ("os.system", "os.popen", "eval", "exec"), f"{path}:{call.lineno} {name}"
            for kw in call.keywords:
                if kw.arg == "shell":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (
                        f"{path}:{call.lineno} shell=..."
                    )


def test_nothing_is_unpickled():
    for path in SOURCES:
        for call, name in _calls(path):
            assert not name.endswith(("pickle.load", "pickle.loads", "marshal.loads")), f"{path}:{call.lineno}"
            if name.endswith("torch.load") or name == "load_state_dict" and "open_clip" in path.read_text():
                kws = {k.arg: k.value for k in call.keywords}
                assert "weights_only" in kws and getattr(kws["weights_only"], "value", None) is True, (
                    f"{path}:{call.lineno} {name} without weights_only=True"
                )


def test_subprocesses_take_argument_lists():
    for path in SOURCES:
        for call, name in _calls(path):
            if name in (
                "subprocess.run",
                "subprocess.Popen",
                "subprocess.call",
                "subprocess.check_call",
                "subprocess.check_output",
            ):
                first = call.args[0] if call.args else None
                assert not isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)), (
                    f"{path}:{call.lineno}: pass a list of arguments, not a command string"
                )
