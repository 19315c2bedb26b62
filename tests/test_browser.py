"""A smoke test in a real browser: the course opens in JupyterLab, opening a notebook changes
nothing, and notebook 01 runs with Run All without an error.

It uses headless Chromium driven by selenium (Debian: `apt-get install chromium chromium-driver`;
`.ci/run` installs them) and is skipped where they are missing (but fails under `make test`). The
course starts as `make course` starts it (tests/jupyter_course.py), in fast mode, on a copy of
the notebooks, so that running notebook 01 does not touch the committed one.
"""

import shutil
import time

import pytest

from tests.optional import need, need_program

nbformat = need("nbformat")
webdriver = need("selenium.webdriver")
CHROMEDRIVER = need_program("chromedriver", "chromium chromium-driver")
CHROMIUM = shutil.which("chromium") or need_program("chromium-browser", "chromium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.jupyter_course import ROOT, running_course  # noqa: E402

pytestmark = pytest.mark.jupyter

NOTEBOOK_01 = "01-Images-To-Patches-To-Tokens.ipynb"
VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(course, browser, folder): JupyterLab serving a copy of notebooks/ in `folder`."""
    home = tmp_path_factory.mktemp("browser")
    folder = home / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)  # --no-sandbox: Chromium refuses root without it
    options.add_argument("--window-size=1400,1000")
    env = {"MIXER_EDU_FAST": "1"}
    with running_course(home, str(folder / "Index.ipynb"), env=env) as course:
        browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
        try:
            yield course, browser, folder
        finally:
            browser.quit()
    assert course.leftovers == [], "the server or a kernel outlived the course"


def _open(lab, name: str, timeout: float = 60) -> None:
    """Open notebook `name` and wait until its kernel has started and is idle."""
    course, browser, _ = lab
    browser.get(f"{course.base}/lab/tree/{name}?token={course.token}")
    WebDriverWait(browser, timeout, poll_frequency=0.5).until(
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, f"{VISIBLE} .jp-Notebook")
            and any(
                "| Idle" in e.text for e in b.find_elements(By.CLASS_NAME, "jp-StatusBar-TextItem")
            )
        )
    )
    time.sleep(1)  # the metadata of the kernel's reply reaches the notebook just after


def _is_dirty(lab) -> bool:
    return bool(lab[1].find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.jp-mod-current.jp-mod-dirty"))


def _save(lab, name: str, timeout: float = 30) -> bytes:
    """Save the open notebook with Ctrl+S, as a student would; return the file JupyterLab wrote."""
    _, browser, folder = lab
    path = folder / name
    before = path.stat().st_mtime_ns
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    WebDriverWait(browser, timeout, poll_frequency=0.2).until(
        lambda _: path.stat().st_mtime_ns != before and not _is_dirty(lab)
    )
    return path.read_bytes()


@pytest.mark.parametrize("name", ["Index.ipynb", "04-Training-On-CIFAR-10.ipynb", NOTEBOOK_01])
def test_opening_and_saving_a_notebook_changes_nothing(lab, name):
    _open(lab, name)
    assert "Jupyter news" not in lab[1].find_element(By.TAG_NAME, "body").text, "news pop-up"
    assert not _is_dirty(lab), "JupyterLab marked the notebook changed on opening it"
    assert _save(lab, name) == (ROOT / "notebooks" / name).read_bytes(), (
        "JupyterLab writes the notebook differently: python tools/notebook_metadata.py"
    )


def test_notebook_01_runs_with_run_all_without_an_error(lab):
    _, browser, folder = lab
    _open(lab, NOTEBOOK_01)
    code_cells = sum(
        cell.cell_type == "code" for cell in nbformat.read(folder / NOTEBOOK_01, 4).cells
    )
    browser.find_element(By.XPATH, "//div[@class='lm-MenuBar-itemLabel' and text()='Run']").click()
    run_all = "//div[contains(@class, 'lm-Menu-itemLabel') and text()='Run All Cells']"
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.XPATH, run_all))
    browser.find_element(By.XPATH, run_all).click()

    def finished(browser) -> bool:
        prompts = [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, f"{VISIBLE} .jp-InputPrompt")
        ]
        numbered = [p for p in prompts if p.strip("[]: ").isdigit()]
        return len(numbered) == code_cells and not any("*" in p for p in prompts)

    WebDriverWait(browser, 120, poll_frequency=0.5).until(finished)
    browser.save_screenshot(str(folder.parent / "run-all.png"))
    notebook = nbformat.reads(_save(lab, NOTEBOOK_01).decode(), 4)
    errors = [
        f"{output.ename}: {output.evalue}"
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert errors == []
    counts = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    assert counts == list(range(1, code_cells + 1))


def test_the_exercises_list_opens_rendered_with_working_links(lab):
    """The Index links to exercises/README.md; it opens as Markdown Preview, whose links open."""
    course, browser, _ = lab
    browser.get(f"{course.base}/lab/tree/exercises/README.md?token={course.token}")
    preview = ".lm-Widget.jp-MarkdownViewer:not(.lm-mod-hidden) .jp-RenderedMarkdown"
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, preview))
    browser.find_element(By.CSS_SELECTOR, preview).find_element(By.LINK_TEXT, "Patchify").click()
    WebDriverWait(browser, 30).until(
        lambda b: b.find_elements(
            By.XPATH, "//div[contains(@class, 'lm-TabBar-tabLabel') and text()='01-Patchify.ipynb']"
        )
    )
