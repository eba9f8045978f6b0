"""The hospital's text policies, checked on every send.

- Orders belong in the EMR: text that reads like a medication or test order draws a warning.
- Critical results are not passed as text between clinicians: the lab's closed loop does that.
- A bare courtesy reply ("thanks", "ok 👍") is delivered without an alert sound, so a busy
  provider's device does not ring for it.

These are heuristics tuned to flag imperative, dosed or order-verb phrasing and to leave prose
about orders alone ("the order set is in the EMR"). They only warn or block as the organization
configures; the tests list the phrasings that must and must not trip.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Warning_(StrEnum):
    ORDERS = "orders"
    CRITICAL_RESULT = "critical_result"


WARNING_TEXT = {
    Warning_.ORDERS: "This reads like an order. Orders belong in the EMR: enter it there, then confirm to send "
                     "this message anyway.",
    Warning_.CRITICAL_RESULT: "This reads like a critical result. Critical results are reported through the "
                              "lab's call-back loop, not by text between clinicians.",
}

BLOCKED_TEXT = {
    Warning_.ORDERS: "This reads like an order, and this organization does not allow orders by message: "
                     "enter it in the EMR.",
    Warning_.CRITICAL_RESULT: "This reads like a critical result, and this organization does not allow them by "
                              "message: use the lab's call-back loop.",
}

_UNITS = (r"(?:mg|mcg|µg|ug|g|gm|grams?|kg|units?|u|iu|meq|mmol|ml|cc|l|liters?|litres?|mg/kg|mcg/kg|mg/hr|"
          r"units/hr|puffs?|tabs?|tablets?)")
_DOSE = rf"\b\d+(?:[.,]\d+)?\s*{_UNITS}\b"
_ROUTE = r"\b(?:iv|ivp|ivpb|po|im|sc|sq|subq|subcut|sl|pr|ng|inh|neb|topical)\b"
_FREQ = r"\b(?:q\d+h|q\d+hr|q\d+min|qd|bid|tid|qid|qhs|prn|stat|once|now|daily|nightly)\b"
_ADMIN_NOUN = r"\b(?:drip|gtt|infusion|bolus|push|transfusion|iv\s+fluids?)\b"
_VERBS = (r"give|start|begin|administer|hang|push|bolus|titrate|increase|decrease|wean|stop|hold|discontinue|"
          r"d/c|dc|resume|restart|switch|change|add|draw|send|obtain|get|check|repeat|transfuse|infuse|load")
_POLITE = r"please|pls|plz|kindly|can you|could you|would you|will you|go ahead and|let'?s"
_IMPERATIVE = rf"(?:^|[.;!?\n]\s*|\b(?:{_POLITE})\s+)(?:{_VERBS})\b"
_ORDER_VERB = (r"\b(?:please|pls|plz|can you|could you|would you|will you|go ahead and|need to|needs to|"
               r"want to|wants to|i'?d like to|let'?s|i'?ll|we'?ll|to)\s+(?:re-?)?order\b")
_ORDER_START = r"(?:^|[.;!?\n]\s*)(?:re-?)?order\s+(?:a|an|some|the|stat|labs?|\d)"
_TESTS = (r"\b(?:cbc|bmp|cmp|bmp|lfts?|coags?|pt/inr|inr|ptt|troponin|lactate|abg|vbg|blood cultures?|cultures?|"
          r"ua|urinalysis|type and screen|type and cross|crossmatch|ekg|ecg|cxr|chest x-?ray|x-?ray|ct|cta|mri|"
          r"ultrasound|echo|labs?|k\+?|potassium|magnesium|mag|phos|glucose|fingerstick|bnp|d-?dimer|lipase)\b")
_DRUGS = (r"\b(?:heparin|enoxaparin|lovenox|insulin|morphine|hydromorphone|dilaudid|fentanyl|oxycodone|kcl|"
          r"potassium chloride|potassium|magnesium sulfate|vancomycin|vanc|zosyn|piperacillin|cefepime|ceftriaxone|"
          r"antibiotics?|lasix|furosemide|metoprolol|lopressor|diltiazem|amiodarone|nitroglycerin|nitro|tylenol|"
          r"acetaminophen|ativan|lorazepam|haldol|haloperidol|zofran|ondansetron|albuterol|epinephrine|norepinephrine|"
          r"levophed|dopamine|dobutamine|warfarin|coumadin|tpa|alteplase|naloxone|narcan|normal saline|ns|lr|"
          r"lactated ringers?|d5w|blood|prbcs?|platelets|ffp|labetalol|hydralazine|dexamethasone|solumedrol)\b")

_ANALYTES = (r"\b(?:k\+?|potassium|na\+?|sodium|glucose|calcium|ca|hgb|hemoglobin|platelets?|plt|inr|troponin|"
             r"lactate|ph|pco2|po2|wbc|magnesium|mg|phos|creatinine|bilirubin|ammonia|digoxin|lithium|"
             r"blood cultures?|culture)\b")
_CRITICAL_WORD = r"\b(?:critical|panic|crit|critically (?:high|low))\b"
_CRITICAL_RESULT = rf"{_CRITICAL_WORD}\s+(?:lab|labs|value|values|result|results|level|levels|call)\b"
_NUMBER = r"\b\d+(?:[.,]\d+)?\b"

_FLAGS = re.IGNORECASE | re.MULTILINE


def _window(pattern_a: str, pattern_b: str, words: int) -> re.Pattern[str]:
    """a, then b within a few words (either order is handled by the caller)."""
    return re.compile(rf"{pattern_a}(?:\W+\w+){{0,{words}}}?\W+{pattern_b}", _FLAGS)


_ORDER_PATTERNS = [
    re.compile(_ORDER_VERB, _FLAGS),
    re.compile(_ORDER_START, _FLAGS),
    _window(_IMPERATIVE, rf"(?:{_DOSE}|{_ROUTE}|{_ADMIN_NOUN}|{_DRUGS}|{_TESTS})", 4),
    _window(_DRUGS, rf"(?:{_DOSE})", 2),
    re.compile(rf"{_DOSE}\s*(?:{_ROUTE}|{_FREQ})", _FLAGS),
]

_CRITICAL_PATTERNS = [
    re.compile(_CRITICAL_RESULT, _FLAGS),
    _window(_CRITICAL_WORD, rf"(?:{_ANALYTES})(?:\W+\w+){{0,2}}?\W+{_NUMBER}", 2),
    _window(_ANALYTES, rf"(?:{_NUMBER}\W+(?:\w+\W+)?)?{_CRITICAL_WORD}", 3),
]

# A reply made only of these is a courtesy: delivered, but silently.
_COURTESY_WORDS = {
    "thanks", "thank", "you", "thx", "thnx", "tx", "ty", "tyvm", "ok", "okay", "k", "kk", "got", "it", "will",
    "do", "roger", "noted", "copy", "that", "appreciate", "appreciated", "cheers", "great", "perfect", "sounds",
    "good", "cool", "much", "very", "so", "many", "a", "lot", "understood", "ack", "acknowledged", "yes", "yep",
    "sure", "np", "no", "problem", "welcome", "youre", "you're", "all", "set", "done", "👍", "🙏", "🙂", "😊",
    "👌", "✅", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿",
}
_COURTESY_CORE = {"thanks", "thank", "thx", "thnx", "tx", "ty", "tyvm", "ok", "okay", "k", "kk", "got", "roger",
                  "noted", "copy", "appreciate", "appreciated", "cheers", "understood", "ack", "acknowledged",
                  "👍", "🙏", "👌", "✅", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿"}
_TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def looks_like_order(text: str) -> bool:
    return any(p.search(text) for p in _ORDER_PATTERNS)


def looks_like_critical_result(text: str) -> bool:
    return any(p.search(text) for p in _CRITICAL_PATTERNS)


def _is_emoji_or_punct(token: str) -> bool:
    return all(unicodedata.category(ch)[0] in ("P", "S", "Z") or ch in "\ufe0f\u200d" for ch in token)


def is_courtesy(text: str) -> bool:
    """Only thanks/acknowledgement words and emoji, and short: "thanks", "Thank you!", "ok thx 👍"."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    words = [t for t in tokens if not (_is_emoji_or_punct(t) and t not in _COURTESY_WORDS)]
    if not words or len(words) > 6:
        return False
    if "?" in text:
        return False
    return all(w in _COURTESY_WORDS for w in words) and any(w in _COURTESY_CORE for w in words)


def text_warnings(text: str) -> list[Warning_]:
    found = []
    if looks_like_order(text):
        found.append(Warning_.ORDERS)
    if looks_like_critical_result(text):
        found.append(Warning_.CRITICAL_RESULT)
    return found


@dataclass(frozen=True)
class TextFindings:
    """What a text looks like by itself, whatever the policy says of it: worked out where a send is
    received (the event loop), so SQLite's one writer thread does not spend its turn on patterns."""

    warnings: tuple[Warning_, ...]
    courtesy: bool


def findings(text: str) -> TextFindings:
    return TextFindings(warnings=tuple(text_warnings(text)), courtesy=is_courtesy(text))
