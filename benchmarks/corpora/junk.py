"""Off-distribution, formulaic and invalid records, each kind from its own recipe.

Text in other languages and scripts comes from packages (see sources.py); gibberish,
keyboard mash, hex and base64 blobs, log lines and templated text are generated here, seeded.
"""

from __future__ import annotations

import base64
import random
import re
import textwrap

from sources import python_sources, words

# --- generated junk --------------------------------------------------------------------------

CONSONANTS = "bcdfghjklmnprstvwxz"
VOWELS = "aeiouy"
KEY_ROWS = ["qwertyuiop", "asdfghjkl;", "zxcvbnm,./", "1234567890"]


def gibberish(rng: random.Random) -> str:
    """Pronounceable pseudo-words in sentence form: what a broken decoder emits."""
    def word() -> str:
        syllables = rng.choice((1, 2, 2, 3, 3, 4))
        return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) +
                       (rng.choice(CONSONANTS) if rng.random() < 0.4 else "")
                       for _ in range(syllables))
    sentences = []
    for _ in range(rng.randint(2, 5)):
        ws = [word() for _ in range(rng.randint(4, 12))]
        sentences.append(ws[0].capitalize() + " " + " ".join(ws[1:]) + rng.choice(".!?."))
    return " ".join(sentences)


def keyboard_mash(rng: random.Random) -> str:
    tokens = []
    for _ in range(rng.randint(6, 24)):
        style = rng.random()
        if style < 0.4:                                   # a run along one row
            row = rng.choice(KEY_ROWS)
            start = rng.randrange(len(row) - 3)
            tok = row[start:start + rng.randint(3, len(row) - start)]
        elif style < 0.7:                                 # home-row hammering
            tok = "".join(rng.choice("asdfjkl;gh") for _ in range(rng.randint(4, 14)))
        elif style < 0.85:                                # a held key
            tok = rng.choice("asdfghjklqwe") * rng.randint(4, 10)
        else:
            tok = "".join(rng.choice("qwertyuiopasdfghjklzxcvbnm")
                          for _ in range(rng.randint(3, 9)))
        tokens.append(tok.upper() if rng.random() < 0.1 else tok)
    return " ".join(tokens)


def hex_blob(rng: random.Random) -> str:
    # At least three lines: a blob is judged as text, not dropped as a too-short record.
    style = rng.randrange(3)
    data = bytes(rng.randrange(256) for _ in range(rng.randint(96, 192)))
    if style == 0:                                        # hexdump -C
        lines = []
        for off in range(0, len(data), 16):
            chunk = data[off:off + 16]
            hexes = " ".join(f"{b:02x}" for b in chunk)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{off:08x}  {hexes:<47}  |{text}|")
        return "\n".join(lines)
    if style == 1:                                        # digests, one per line
        return "\n".join(data[i:i + 32].hex() for i in range(0, len(data) - 31, 32))
    return ", ".join(f"0x{b:02X}" for b in data[:64])     # a C byte array


def base64_blob(rng: random.Random) -> str:
    # At least three lines of 76 characters (see hex_blob).
    data = bytes(rng.randrange(256) for _ in range(rng.randint(180, 360)))
    body = base64.b64encode(data).decode()
    style = rng.randrange(3)
    if style == 0:
        return "\n".join(textwrap.wrap(body, 76))
    if style == 1:
        return "\n".join(textwrap.wrap("data:image/png;base64," + body, 76))
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(body, 64)) +
            "\n-----END CERTIFICATE-----")


HOSTS = ["web-01", "web-03", "db-primary", "cache-2", "worker-7", "gw-eu-1"]
PATHS = ["/api/v1/items", "/login", "/static/app.js", "/health", "/api/v2/orders/{n}",
         "/search?q=test&page={n}", "/admin/users/{n}/edit"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/7.88.1", "python-requests/2.31"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def log_lines(rng: random.Random) -> str:
    """2-6 lines of one log format: syslog, web access, application or kernel."""
    style = rng.randrange(5)
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    host, lines = rng.choice(HOSTS), []
    clock = rng.randrange(86400)
    for _ in range(rng.randint(2, 6)):
        clock += rng.randint(0, 90)
        hh, mm, ss = clock // 3600 % 24, clock // 60 % 60, clock % 60
        ip = (f"{rng.choice((10, 172, 192, 203))}.{rng.randrange(256)}.{rng.randrange(256)}."
              f"{rng.randrange(1, 255)}")
        n = rng.randrange(1, 99999)
        # Wrapped f-strings only: the order of the random draws is the corpus's identity.
        if style == 0:
            msg = rng.choice([f"Failed password for invalid user "
                              f"{rng.choice(['admin', 'root', 'test', 'oracle'])} from {ip} "
                              f"port {rng.randint(1024, 65535)} ssh2",
                              f"Accepted publickey for deploy from {ip} port "
                              f"{rng.randint(1024, 65535)} ssh2",
                              "pam_unix(sshd:session): session closed for user deploy",
                              f"Connection closed by authenticating user root {ip} port "
                              f"{rng.randint(1024, 65535)} [preauth]"])
            lines.append(f"{month} {day:2d} {hh:02d}:{mm:02d}:{ss:02d} {host} "
                         f"sshd[{rng.randint(300, 40000)}]: {msg}")
        elif style == 1:
            path = rng.choice(PATHS).format(n=n)
            lines.append(f'{ip} - - [{day:02d}/{month}/2024:{hh:02d}:{mm:02d}:{ss:02d} +0000] '
                         f'"{rng.choice(["GET", "GET", "POST", "PUT"])} {path} HTTP/1.1" '
                         f'{rng.choice([200, 200, 200, 301, 404, 500, 502])} '
                         f'{rng.randint(0, 90000)} "-" '
                         f'"{rng.choice(AGENTS)}"')
        elif style == 2:
            level = rng.choice(["INFO", "INFO", "DEBUG", "WARNING", "ERROR"])
            msg = rng.choice([f"job {n:05x} finished in {rng.random() * 9:.2f}s "
                              f"(queue=default, retries={rng.randint(0, 3)})",
                              f"cache miss for key user:{n}:profile, fetching from db",
                              f"retrying request to {ip}:8080 after ConnectionResetError "
                              f"(attempt {rng.randint(1, 5)}/5)",
                              f"processed batch {n} rows={rng.randint(1, 5000)} "
                              f"elapsed_ms={rng.randint(3, 9000)}"])
            lines.append(f"2024-{MONTHS.index(month) + 1:02d}-{day:02d} {hh:02d}:{mm:02d}:{ss:02d},"
                         f"{rng.randrange(1000):03d} {level} "
                         f"{rng.choice(['app.worker', 'api.views', 'db.pool'])}: {msg}")
        elif style == 3:
            lines.append(f"[{rng.randint(1, 99999):5d}.{rng.randrange(10**6):06d}] " + rng.choice([
                f"usb 1-{rng.randint(1, 4)}: new high-speed USB device number "
                f"{rng.randint(2, 30)} using xhci_hcd",
                f"EXT4-fs (sda{rng.randint(1, 4)}): mounted filesystem with ordered data mode. "
                f"Quota mode: none.",
                "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, "
                "Flow Control: Rx/Tx",
                f"Out of memory: Killed process {rng.randint(300, 40000)} (java) "
                f"total-vm:{rng.randint(10**6, 9 * 10**6)}kB"]))
        else:
            lines.append(f"{hh:02d}:{mm:02d}:{ss:02d}.{rng.randrange(1000):03d} "
                         f"[{rng.choice(['main', 'pool-1-thread-3', 'http-nio-8080-exec-7'])}] "
                         f"{rng.choice(['ERROR', 'WARN', 'INFO'])} "
                         f"c.e.{rng.choice(['OrderService', 'PaymentClient', 'InventoryRepo'])} - "
                         + rng.choice([f"Timeout after {rng.randint(1, 30) * 100} ms calling "
                                       f"inventory-service (attempt {rng.randint(1, 3)}/3)",
                                       f"Order {n} persisted in {rng.randint(2, 400)} ms",
                                       'java.lang.NullPointerException: Cannot invoke '
                                       '"String.length()" because "s" is null']))
    return "\n".join(lines)


CODE_LINE = re.compile(r"[=():\[\]]|^\s*(def|class|return|import|if|for)\b")


class CodeSnippets:
    """Runs of 4-14 source lines from the Python standard library, mostly code (not prose
    comments or docstrings)."""

    def __init__(self) -> None:
        self.modules = python_sources()

    def sample(self, rng: random.Random) -> str:
        while True:
            _, source = rng.choice(self.modules)
            lines = source.splitlines()
            if len(lines) < 20:
                continue
            start = rng.randrange(len(lines) - 15)
            chunk = [ln.rstrip() for ln in lines[start:start + rng.randint(4, 14)]]
            chunk = [ln for ln in chunk if ln.strip()]
            code_like = sum(bool(CODE_LINE.search(ln))
                            and not ln.strip().startswith(("#", '"', "'")) for ln in chunk)
            if (len(chunk) >= 4 and code_like >= 0.6 * len(chunk)
                    and len(words(" ".join(chunk))) >= 10):
                return textwrap.dedent("\n".join(chunk))


# --- formulaic ---------------------------------------------------------------------------------

OPENERS = [
    "As an AI language model, I don't have personal opinions, but here is my answer:",
    "Certainly! Here's a quote for you:", "Sure! Here is a short definition:",
    "Great question! Let's delve into it.", "I'd be happy to help with that.",
    "Absolutely! Here's what you need to know:", "Of course! Here is a witty saying:",
    "As an AI, I can provide some insight into this topic.", "Here's a concise explanation:",
    "It's important to note that",
]
CLOSERS = [
    "I hope this helps! Let me know if you have any other questions.",
    "Feel free to ask if you need more information.",
    "In conclusion, it is a fascinating topic worth exploring further.",
    "Remember, everyone's experience is unique.", "Let me know if you'd like more examples!",
    "Overall, this highlights the importance of understanding the topic.",
]
LIST_HEADS = ["Here are {n} tips for {topic}:", "Top {n} ways to improve your {noun}:",
              "{n} things you need to know about {topic}:",
              "Here are {n} reasons why {noun}s matter:"]
TIPS = ["Always {verb} your {noun}.", "Don't forget to {verb} the {noun}.",
        "Make sure to {verb} {noun}s regularly.", "Avoid {verb}ing too many {noun}s.",
        "Consider a {adj} {noun}.", "Stay {adj} and keep your {noun} {adj2}."]
SLOT_TEMPLATES = [
    "The {noun} is a {adj} {noun2} that helps you {verb} the {noun3}. It is widely used in "
    "{noun4} and is known for its {adj2} {noun5}.",
    "{Noun} can be defined as a {adj} way to {verb} {noun2}s. In today's fast-paced world, "
    "understanding {noun3} is more important than ever.",
    "When it comes to {noun}, there are many factors to consider, such as {noun2}, {noun3} and "
    "{noun4}. Ultimately, the key is to {verb} with a {adj} {noun5}.",
    "Did you know that a {adj} {noun} can {verb} your {noun2}? Experts agree that {noun3} plays a "
    "crucial role in {noun4}.",
    "{Noun} is not just about {noun2}; it's about {verb}ing the {adj} {noun3} in all of us. "
    "Embrace the {noun4} and unlock your {adj2} potential.",
]


def _fill(template: str, rng: random.Random, slots: dict[str, list[str]]) -> str:
    def repl(m: re.Match) -> str:
        key = re.sub(r"\d", "", m.group(1))
        if key == "n":
            return str(rng.randint(3, 7))
        if key == "topic":
            return rng.choice((f"{rng.choice(slots['verb'])}ing {rng.choice(slots['noun'])}s",
                               f"a better {rng.choice(slots['noun'])}"))
        value = rng.choice(slots[key.lower()])
        return value.capitalize() if key[0].isupper() else value
    return re.sub(r"\{(\w+)\}", repl, template)


def stock_phrase(rng: random.Random, content: str) -> str:
    parts = [rng.choice(OPENERS), content]
    if rng.random() < 0.6:
        parts.append(rng.choice(CLOSERS))
    return " ".join(parts)


def listicle(rng: random.Random, slots: dict[str, list[str]]) -> str:
    head = _fill(rng.choice(LIST_HEADS), rng, slots)
    n = int(re.search(r"\d+", head).group()) if re.search(r"\d+", head) else 3
    tips = [f"{i}. " + _fill(rng.choice(TIPS), rng, slots) for i in range(1, n + 1)]
    return head + "\n" + "\n".join(tips)


def slot_template(rng: random.Random, slots: dict[str, list[str]]) -> str:
    return _fill(rng.choice(SLOT_TEMPLATES), rng, slots)


# --- invalid ---------------------------------------------------------------------------------

SHORT = ["Yes.", "No.", "OK", "Thanks!", "See above.", "N/A", "TODO", "lol", "Hmm...", "Done.",
         "Sure thing", "???", "Good point."]


def invalid(kind: str, rng: random.Random, vocabulary: list[str]) -> str:
    if kind == "empty":
        return ""
    if kind == "whitespace":
        return "".join(rng.choice(" \t\n") for _ in range(rng.randint(1, 8)))
    return rng.choice(SHORT) if rng.random() < 0.6 else rng.choice(vocabulary).capitalize() + "."
