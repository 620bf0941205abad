"""The formulaic stage and its scorers: one small scorer per signal (templates.py, stock.py,
repetition.py), calibrated on the real records (calibration.py) and combined by
FormulaicScorer (scorer.py); the stage (stage.py) turns scores into decisions."""

from .calibration import Signal, SignalTail, per_signal_level, tail_to_score
from .evidence import benjamini_hochberg, fisher_log_p, log_odds
from .repetition import GOPHER_LIMITS, RepetitionSignal, repetition
from .scorer import RAW, SIGNALS, FormulaicScorer
from .stage import FormulaicStage
from .stock import StockPhraseSignal, load_stock_phrases
from .templates import TemplateSignal
from .tokens import Tokens, ngram_hashes, tokenize

__all__ = ["FormulaicScorer", "FormulaicStage", "Signal", "SignalTail", "TemplateSignal",
           "StockPhraseSignal", "RepetitionSignal", "SIGNALS", "RAW", "GOPHER_LIMITS",
           "benjamini_hochberg", "fisher_log_p", "load_stock_phrases", "log_odds",
           "ngram_hashes", "per_signal_level", "repetition", "tail_to_score", "tokenize",
           "Tokens"]
