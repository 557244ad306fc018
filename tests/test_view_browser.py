"""The case viewer in a real headless browser (Debian's chromium + chromedriver, driven by selenium).

``make test`` installs the browser with ``scripts/install-browser.sh``; the test skips, saying why,
only when no browser or driver is there. It clicks answer sentences and checks exactly which note
sentences the page highlights, compares two runs, and saves a screenshot into the test's tmp dir.
"""

from __future__ import annotations

import shutil

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.view.html import write_view
from test_view import altered_answer_sentence, make_run


def _browser_paths() -> tuple[str, str] | None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    paths = _browser_paths()
    if paths is None:
        pytest.skip("no chromium/chromedriver on PATH: run scripts/install-browser.sh as root")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1500,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    yield driver
    driver.quit()


def highlighted(driver, case_id: str, run: str, css_class: str) -> set[str]:
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(function (s) { return s.dataset.sid; });"
    selector = f'#case-{case_id} .panel[data-run="{run}"] ol.note .sent.{css_class}'
    return set(driver.execute_script(script, selector))


def test_click_highlights_exactly_the_cited_sentences(browser, tmp_path):
    from selenium.webdriver.common.by import By

    run_a = make_run(tmp_path / "a")
    run_b = make_run(tmp_path / "b", perfect_st2=frozenset({"101", "102"}))
    page = write_view(run_a, run_b, tmp_path / "compare.html").path
    browser.get(page.as_uri())
    case = next(c for c in read_dataset() if c.id == "101")
    first = altered_answer_sentence(case)

    # ST3: the generated answer's first cited sentence cites only the first gold citation (see make_run)
    st3 = browser.find_element(By.CSS_SELECTOR, f'#case-101 .panel[data-run="A"] .ans.st3[data-aid="{first.id}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", st3)
    st3.click()
    assert highlighted(browser, "101", "A", "cited") == {first.citations[0]}
    assert highlighted(browser, "101", "A", "missing") == set()
    assert highlighted(browser, "101", "B", "cited") == set()  # the other run's panel is untouched

    # ST4: predicted links = gold minus its last citation, plus one wrong sentence
    wrong = [sid for sid, lab in case.relevance if lab == "not-relevant"][0]
    st4 = browser.find_element(By.CSS_SELECTOR, f'#case-101 .panel[data-run="A"] .ans.st4[data-aid="{first.id}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", st4)
    st4.click()
    predicted = set(first.citations[:-1]) | {wrong}
    assert highlighted(browser, "101", "A", "cited") == predicted
    assert highlighted(browser, "101", "A", "link-correct") == set(first.citations[:-1])
    assert highlighted(browser, "101", "A", "link-wrong") == {wrong}
    assert highlighted(browser, "101", "A", "missing") == {first.citations[-1]}
    missing = browser.find_element(
        By.CSS_SELECTOR, f'#case-101 .panel[data-run="A"] .sent.missing[data-sid="{first.citations[-1]}"]'
    )
    label = browser.execute_script("return getComputedStyle(arguments[0], '::after').content;", missing)
    assert label == '"missing"'
    browser.save_screenshot(str(tmp_path / "case-101.png"))

    # a second click on the same sentence unpins it; moving the mouse away leaves nothing highlighted
    st4.click()
    browser.execute_script("window.scrollTo(0, 0);")
    assert highlighted(browser, "101", "A", "cited") == set()

    # the comparison: B fixed ST2 on cases 101 and 102
    assert "better on 2, worse on 0, same on 12 cases" in browser.find_element(By.CSS_SELECTOR, "p.compare").text
    verdicts = {
        row.get_attribute("data-case"): row.find_element(By.CSS_SELECTOR, "td.verdict").text
        for row in browser.find_elements(By.CSS_SELECTOR, "table.index tbody tr")
    }
    assert verdicts["101"] == "better" and verdicts["114"] == "same"
    browser.save_screenshot(str(tmp_path / "index.png"))
    print(f"screenshots: {tmp_path / 'index.png'} {tmp_path / 'case-101.png'}")


def test_index_sorts_on_click(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page = write_view(make_run(tmp_path / "a"), plots=False).path
    browser.get(page.as_uri())

    def column(n: int) -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "table.index tbody tr")
        return [r.find_elements(By.TAG_NAME, "td")[n].get_attribute("data-v") for r in rows]

    heads = browser.find_elements(By.CSS_SELECTOR, "table.index th")
    mean_col = next(i for i, h in enumerate(heads) if h.text.startswith("mean A"))
    worst_first = [float(v) for v in column(mean_col)]
    assert worst_first == sorted(worst_first)  # the default order
    heads[mean_col].click()  # already ascending -> descending
    assert [float(v) for v in column(mean_col)] == sorted(worst_first, reverse=True)
    heads[0].click()  # by case id
    assert column(0) == sorted(column(0), key=int)
