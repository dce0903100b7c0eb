"""The web app: REST API (TestClient), a real server on loopback, a short load test, and the page in Chromium."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from project_scripts import load_script

from retrieval.cli import main
from retrieval.corpus import Document, read_corpus
from retrieval.retriever import HybridRetriever
from retrieval.web import background, create_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
XSS = '<img src=x onerror="window.__pwned=1">'
# A BM25-only Chinese index: a second index, a mode the first lacks, CJK text, and hostile markup.
ZH = [
    Document("264", "中华人民共和国刑法第二百六十四条", "盗窃公私财物，数额较大的，或者多次盗窃、入户盗窃、携带凶器盗窃、扒窃的，"
             "处三年以下有期徒刑、拘役或者管制，并处或者单处罚金。"),
    Document("232", "中华人民共和国刑法第二百三十二条", "故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑；情节较轻的，处三年以上十年以下有期徒刑。"),
    Document("266/<b>", f"诈骗罪 {XSS}", f"诈骗公私财物，数额较大的，处三年以下有期徒刑。<script>window.__pwned=1</script>{XSS}"),
]

# A BM25-only index with acts, jurisdictions and dates in force: the README's amended statutes and one more country.
LAWS = [*read_corpus(ROOT / "docs" / "examples" / "statutes-v2.jsonl"),
        Document("TA1968-1", "Basic definition of theft", "A person is guilty of theft if he dishonestly appropriates "
                 "property belonging to another with the intention of permanently depriving the other of it.",
                 act="Theft Act 1968", jurisdiction="GB", section="1", valid_from="1968-07-26")]


@pytest.fixture(scope="module")
def app(tiny_index, tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    HybridRetriever.build(ZH, legs=["bm25"], language="zh", progress=False).save(folder / "zh")
    HybridRetriever.build(LAWS, legs=["bm25"], progress=False).save(folder / "laws")
    return create_app({"tiny": HybridRetriever.load(tiny_index), "zh": HybridRetriever.load(folder / "zh"),
                       "laws": HybridRetriever.load(folder / "laws")})


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def url(app):
    with background(app) as base:
        yield base


def test_health_names_each_index(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    tiny, zh, laws = body["indexes"]
    assert tiny == {"name": "tiny", "documents": 5, "legs": ["dense", "bm25"], "modes": ["hybrid", "dense", "bm25"],
                    "default_mode": "hybrid", "model": "all-MiniLM-L6-v2 (bundled)", "language": "en"}
    assert (zh["name"], zh["legs"], zh["modes"], zh["model"], zh["language"]) == ("zh", ["bm25"], ["hybrid", "bm25"],
                                                                                   None, "zh")
    assert (laws["name"], laws["documents"]) == ("laws", 8)


def test_health_lists_the_modes_the_api_accepts(client):
    """One list: every mode /api/health names is answered, and the one it does not name is refused."""
    for ix in client.get("/api/health").json()["indexes"]:
        for mode in ix["modes"]:
            assert client.get("/api/search", params={"q": "theft", "index": ix["name"], "mode": mode}).status_code == 200
        missing = {"hybrid", "dense", "bm25"} - set(ix["modes"])
        assert all(client.get("/api/search", params={"q": "theft", "index": ix["name"], "mode": m}).status_code == 400
                   for m in missing)


def test_hits_carry_act_section_dates_and_whether_in_force(client):
    """Without as_of the day is today: the repealed IPC-304B is not in force, its successor BNS-80 is."""
    hits = {h["id"]: h for h in client.get("/api/search", params={"q": "dowry death", "index": "laws"}).json()["hits"]}
    ipc, bns = hits["IPC-304B"], hits["BNS-80"]
    assert (ipc["act"], ipc["section"], ipc["valid_from"], ipc["valid_to"], ipc["in_force"]) == (
        "IPC", "304B", "1986-11-19", "2024-07-01", False)
    assert (bns["act"], bns["valid_from"], bns["in_force"], "valid_to" in bns) == ("BNS", "2024-07-01", True, False)
    then = client.get("/api/search", params={"q": "dowry death", "index": "laws", "as_of": "2020-01-01"}).json()
    assert [(h["id"], h["in_force"]) for h in then["hits"]][:1] == [("IPC-304B", True)]


@pytest.mark.parametrize("params, warning, found", [
    ({"act": "ipc"}, "no document has act 'ipc'; nearest: IPC", 0),
    ({"filter": "act in (IPC, 'Theft Act 1986')"}, "no document has act 'Theft Act 1986'; nearest: Theft Act 1968", 2),
    ({"jurisdiction": "IN", "as_of": "2000-01-01", "act": "BNS"}, "no document matches the filters", 0),
])
def test_filter_values_no_document_has_come_with_a_warning(client, params, warning, found):
    body = client.get("/api/search", params={"q": "dowry death", "index": "laws", **params}).json()
    assert warning in body["warnings"] and len(body["hits"]) == found


def test_an_unknown_filter_field_is_a_400_naming_the_fields(client):
    response = client.get("/api/search", params={"q": "dowry", "index": "laws", "filter": "Act = IPC"})
    detail = response.json()["detail"]
    assert response.status_code == 400 and "no field 'Act' (did you mean 'act'?)" in detail
    assert "act, jurisdiction, section, valid_from, valid_to" in detail
    assert "warnings" not in client.get("/api/search", params={"q": "dowry", "index": "laws", "act": "IPC"}).json()


def test_search_returns_the_query_json_shape(client):
    body = client.get("/api/search", params={"q": "dowry death of a married woman", "k": 3}).json()
    assert set(body) == {"query", "mode", "legs", "hits", "seconds"}
    assert (body["query"], body["mode"], len(body["hits"])) == ("dowry death of a married woman", "hybrid", 3)
    top = body["hits"][0]
    assert set(top) == {"rank", "id", "title", "score", "dense", "bm25", "matched_terms"}
    assert (top["rank"], top["id"], top["title"]) == (1, "S1", "Dowry death")
    assert top["dense"]["rank"] == 1 and top["bm25"]["rank"] == 1
    assert {"dowry", "death"} <= set(top["matched_terms"])


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_single_leg_modes(client, mode):
    body = client.get("/api/search", params={"q": "theft of property", "mode": mode, "k": 5}).json()
    other = "bm25" if mode == "dense" else "dense"
    assert body["mode"] == mode and body["hits"]
    assert all(h[mode]["rank"] == h["rank"] and h[other]["rank"] is None for h in body["hits"])


def test_second_index_in_chinese(client):
    body = client.get("/api/search", params={"q": "盗窃财物", "index": "zh", "mode": "bm25"}).json()
    assert body["hits"][0]["id"] == "264" and "盗窃" in body["hits"][0]["matched_terms"]


def test_search_filters(client):
    body = client.get("/api/search", params={"q": "dowry death", "filter": "id in (S3, S4)", "k": 5}).json()
    assert sorted(h["id"] for h in body["hits"]) == ["S3", "S4"]
    assert client.get("/api/search", params={"q": "dowry", "jurisdiction": "XX"}).json()["hits"] == []
    assert len(client.get("/api/search", params={"q": "dowry", "as_of": "2019-06-01"}).json()["hits"]) == 5


def test_facets_list_each_index_acts_and_jurisdictions(client):
    laws = client.get("/api/facets", params={"index": "laws"}).json()
    assert laws == {"index": "laws", "act": ["BNS", "IPC", "Theft Act 1968"], "jurisdiction": ["GB", "IN"]}
    assert client.get("/api/facets").json() == {"index": "tiny", "act": [], "jurisdiction": []}
    assert client.get("/api/facets", params={"index": "nope"}).status_code == 404


@pytest.mark.parametrize("params, ids", [
    ({}, ["IPC-302", "IPC-378", "BNS-103", "TA1968-1", "BNS-303", "IPC-304B", "BNS-80"]),
    ({"act": "BNS"}, ["BNS-103", "BNS-303", "BNS-80"]),
    ({"jurisdiction": "GB"}, ["TA1968-1"]),
    ({"as_of": "2020-01-01"}, ["IPC-302", "IPC-378", "TA1968-1", "IPC-304B"]),
    ({"as_of": "2024-07-01", "jurisdiction": "IN"}, ["BNS-103", "BNS-303", "BNS-80"]),
    ({"act": "IPC", "as_of": "2024-07-01"}, []),
])
def test_facet_filters_keep_only_matching_statutes(client, params, ids):
    """The page's facets and date picker send these parameters: the unfiltered ranking (every statute sharing a
    word with the query; IPC-124A shares none) restricted to the matching statutes, in the same order."""
    query = {"q": "theft of property, murder or death", "index": "laws", "k": 10, **params}
    assert [h["id"] for h in client.get("/api/search", params=query).json()["hits"]] == ids


@pytest.mark.parametrize("params, status, words", [
    ({"q": "theft", "filter": "id = "}, 400, "position 6"),
    ({"q": "theft", "as_of": "June"}, 400, "not an ISO date"),
    ({"q": ""}, 400, "empty query"),
    ({"q": "   "}, 400, "empty query"),
    ({}, 400, "empty query"),
    ({"q": "theft", "k": 0}, 400, "k"),
    ({"q": "theft", "k": 101}, 400, "k"),
    ({"q": "theft", "k": "ten"}, 400, "integer"),
    ({"q": "theft", "mode": "fuzzy"}, 400, "no fuzzy leg"),
    ({"q": "盗窃", "index": "zh", "mode": "dense"}, 400, "no dense leg"),
    ({"q": "theft", "index": "nope"}, 404, "unknown index"),
    ({"q": "x" * 20_001}, 413, "limit is 20,000"),
])
def test_search_errors_are_json_with_a_message(client, params, status, words):
    response = client.get("/api/search", params=params)
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_documents(client, tiny_docs):
    theft = next(d for d in tiny_docs if d.id == "S3")
    assert client.get("/api/documents/S3").json() == {"id": "S3", "title": "Theft", "text": theft.text}
    assert client.get("/api/documents/266%2F%3Cb%3E", params={"index": "zh"}).json()["id"] == "266/<b>"
    missing = client.get("/api/documents/S99")
    assert missing.status_code == 404 and "unknown document 'S99'" in missing.json()["detail"]


def test_page_openapi_and_static(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert {"/api/search", "/api/health", "/api/documents/{doc_id}"} <= set(client.get("/openapi.json").json()["paths"])
    assert client.get("/docs").status_code == 404  # Swagger UI needs a CDN; there is no network


@pytest.mark.parametrize("argv, code, words", [
    (["--port", "0"], 2, "--port must be 1..65535"),
    (["--port", "70000"], 2, "--port must be 1..65535"),
])
def test_serve_rejects_a_bad_port(tmp_path, capsys, argv, code, words):
    assert main(["serve", str(tmp_path), *argv]) == code
    assert words in capsys.readouterr().err


def test_serve_rejects_missing_and_same_named_folders(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nowhere")]) == 3
    assert "no index folder" in capsys.readouterr().err
    (tmp_path / "a" / "ix").mkdir(parents=True)
    (tmp_path / "b" / "ix").mkdir(parents=True)
    assert main(["serve", str(tmp_path / "a" / "ix"), str(tmp_path / "b" / "ix")]) == 2
    assert "share a name (ix)" in capsys.readouterr().err


def test_real_server_takes_a_20000_character_cjk_query(url):
    ok, answer = _get(f"{url}/api/search?" + urlencode({"q": "盗窃" * 10_000, "index": "zh", "k": 1}))
    too_long, _ = _get(f"{url}/api/search?" + urlencode({"q": "盗窃" * 10_001, "index": "zh"}))
    assert (ok, answer["hits"][0]["id"], too_long) == (200, "264", 413)


def test_short_load_test(url):
    """scripts/load_test.py against the loopback server: 50 requests, 4 at a time, no errors."""
    report = load_script("load_test").run(url, requests=50, concurrency=4)
    assert (report["requests"], report["errors"]) == (50, 0)
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] and report["throughput_rps"] > 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_page_in_chromium(url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.goto(url)
            expect(page.locator("body[data-ready]")).to_be_attached()
            expect(page.locator("#modes input")).to_have_count(3)

            page.locator("#status").click()  # away from the autofocused box: "/" brings focus back
            expect(page.locator("#q")).not_to_be_focused()
            page.keyboard.press("/")
            expect(page.locator("#q")).to_be_focused()
            page.keyboard.type("dowry death of a married woman")
            page.keyboard.press("Enter")
            first = page.locator(".hit").first
            expect(page.locator("#q")).to_have_value("dowry death of a married woman")
            expect(first.locator(".doc-id")).to_have_text("S1")
            expect(first.locator(".snippet mark").first).to_have_text("dowry", ignore_case=True)
            expect(first.locator(".scores")).to_contain_text("dense #")
            page.screenshot(path=tmp_path / "web.png")

            page.keyboard.press("ArrowDown")
            expect(first).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("#doc")).to_have_attribute("open", "")
            expect(page.locator("#doc-text")).to_contain_text("within seven years of her marriage")
            page.keyboard.press("Escape")
            expect(page.locator("#doc")).not_to_have_attribute("open", "")
            expect(first).to_be_focused()

            page.get_by_label("BM25").check()
            expect(page.locator("#status")).to_contain_text("BM25")
            expect(first.locator(".scores")).not_to_contain_text("dense")

            page.select_option("#index", "zh")
            expect(page.locator("#modes input")).to_have_count(1)
            page.fill("#q", "诈骗财物")
            page.keyboard.press("Enter")
            hit = page.locator(".hit").first
            expect(hit.locator("h3")).to_have_text(f"诈骗罪 {XSS}")
            expect(hit.locator(".snippet mark").first).to_have_text("诈骗")
            hit.click()
            expect(page.locator("#doc-text")).to_contain_text("<script>window.__pwned=1</script>")
            page.screenshot(path=tmp_path / "web-zh.png")
            assert page.evaluate("window.__pwned") is None and page.locator("#results img, #doc img").count() == 0
            assert not problems, problems
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_page_facets_and_date_in_chromium(url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("body[data-ready]")).to_be_attached()
            expect(page.locator("#act-label")).to_be_hidden()  # the tiny index has no acts
            page.select_option("#index", "laws")
            expect(page.locator("#act-list option")).to_have_count(3)
            assert page.eval_on_selector_all("#act-list option", "os => os.map(o => o.value)") == ["BNS", "IPC", "Theft Act 1968"]
            assert page.eval_on_selector_all("#jurisdiction-list option", "os => os.map(o => o.value)") == ["GB", "IN"]
            page.fill("#q", "theft of property, murder or death")
            page.fill("#act", "IPC")
            page.keyboard.press("Enter")
            expect(page.locator(".hit .doc-id")).to_have_text(["IPC-302", "IPC-378", "IPC-304B"])
            expect(page.locator(".hit .statute").first).to_contain_text("not in force since 2024-07-01")
            page.fill("#as-of", "2024-07-01")  # the IPC was repealed that day
            page.locator("#as-of").dispatch_event("change")
            expect(page.locator("#status")).to_contain_text("No statutes found")
            page.fill("#act", "")
            page.locator("#act").dispatch_event("change")
            expect(page.locator(".hit .doc-id")).to_have_text(["BNS-103", "TA1968-1", "BNS-303", "BNS-80"])
            expect(page.locator(".hit .statute").first.locator("span")).to_have_text(["BNS s. 103, IN", "from 2024-07-01",
                                                                                      "in force"])
            assert "as_of=2024-07-01" in page.url and "act=" not in page.url
            page.goto(page.url)  # the filters come back from the address
            expect(page.locator("#as-of")).to_have_value("2024-07-01")
            expect(page.locator("#index")).to_have_value("laws")
            page.fill("#act", "ipc")  # the act is IPC: the page says so instead of an empty list alone
            page.keyboard.press("Enter")
            expect(page.locator("#warnings")).to_contain_text("no document has act 'ipc'; nearest: IPC")
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_chinese_page_marks_whole_words_in_a_cjk_font(url, tmp_path):
    """As a reader sees it: a CJK font is installed (.ci/run installs fonts-wqy-zenhei beside chromium), and the
    snippets mark whole query words, never one character inside an unrelated word (人 in 杀人 for 他人)."""
    import subprocess

    from playwright.sync_api import expect, sync_playwright

    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no Chinese font: apt-get install fonts-wqy-zenhei"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(f"{url}/?" + urlencode({"index": "zh", "q": "盗窃他人财物"}))
            expect(page.locator(".hit").first.locator(".doc-id")).to_have_text("264")
            expect(page.locator(".hit .snippet:not(.muted)")).to_have_count(page.locator(".hit").count())
            marks = page.eval_on_selector_all(".hit .snippet mark", "ms => ms.map(m => m.textContent)")
            assert {"盗窃", "财物"} <= set(marks) and all(len(m) >= 2 for m in marks), marks
            page.screenshot(path=tmp_path / "web-zh-words.png")
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_act_menu_does_not_push_the_page_sideways(tmp_path, width):
    """STARD has 1,338 acts, some 74 characters long: the act field is searchable and the page never scrolls
    sideways, on a desktop or a phone."""
    from playwright.sync_api import expect, sync_playwright

    acts = [f"中华人民共和国关于第{i:04d}号特别行政区若干法律适用问题与管理条例的实施细则及补充规定和相关解释说明" for i in range(1338)]
    assert max(map(len, acts)) >= 50 and len(set(acts)) == 1338
    acts[0] = "Act " + "x" * 70  # 74 characters
    docs = [Document(str(i), f"第{i}条", f"盗窃公私财物 {i}", act=act) for i, act in enumerate(acts)]
    HybridRetriever.build(docs, legs=["bm25"], language="zh", progress=False).save(tmp_path / "acts")
    app = create_app({"acts": HybridRetriever.load(tmp_path / "acts")})
    with background(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(f"{base}/?" + urlencode({"q": "盗窃财物"}))
            expect(page.locator(".hit").first).to_be_visible()
            expect(page.locator("#act-list option")).to_have_count(1338)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.fill("#act", acts[7])
            page.keyboard.press("Enter")
            expect(page.locator(".hit .doc-id")).to_have_text(["7"])
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=tmp_path / f"acts-{width}.png")
        finally:
            browser.close()


def _get(address: str) -> tuple[int, dict]:
    """Status and JSON body of a GET (urllib: httpx refuses URLs over 64 KiB, this test sends 180 KiB)."""
    try:
        with urllib.request.urlopen(address, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
