"""The interop suite's skip policy (conftest.py): a module whose tests all skipped exits 77
(CTest shows it as skipped), and under MODELPRESS_INTEROP_STRICT=1 (CI) a skip fails unless
allowed_skips.txt matches its reason. Checked on throwaway modules run by a child pytest with
this folder's conftest.py."""
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).parent

MODULES = {
    "test_whole_module_skips.py": 'import pytest\npytest.importorskip("no_such_package_for_the_policy")\n'
                                  "def test_a():\n    pass\n",
    "test_one_case_skips.py": "import pytest\ndef test_a():\n    pass\n"
                              'def test_b():\n    pytest.skip("needs a GPU for the policy test")\n',
    "test_nothing_skips.py": "def test_a():\n    pass\n",
    "test_no_tests.py": "def helper():\n    pass\n",
}


def run(tmp_path, module, strict, allowed=()):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "allowed_skips.txt").write_text("# why: the policy test\n" + "".join(a + "\n" for a in allowed))
    (tmp_path / module).write_text(MODULES[module])
    env = dict(os.environ, MODELPRESS_INTEROP_STRICT="1" if strict else "0")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module],
                          cwd=tmp_path, env=env, capture_output=True, text=True).returncode


def test_a_wholly_skipped_module_reports_skipped(tmp_path):
    assert run(tmp_path, "test_whole_module_skips.py", strict=False) == 77


def test_strict_fails_a_skip_not_on_the_list(tmp_path):
    assert run(tmp_path, "test_whole_module_skips.py", strict=True) == 1
    assert run(tmp_path, "test_one_case_skips.py", strict=True) == 1


def test_strict_allows_a_listed_skip(tmp_path):
    assert run(tmp_path, "test_whole_module_skips.py", strict=True, allowed=["no_such_package"]) == 77
    assert run(tmp_path, "test_one_case_skips.py", strict=True, allowed=[r"needs a GPU"]) == 0


def test_partial_skips_pass_outside_strict_and_clean_modules_pass_in_it(tmp_path):
    assert run(tmp_path, "test_one_case_skips.py", strict=False) == 0
    assert run(tmp_path, "test_nothing_skips.py", strict=True) == 0


def test_a_module_without_tests_fails(tmp_path):
    assert run(tmp_path, "test_no_tests.py", strict=False) == 1
