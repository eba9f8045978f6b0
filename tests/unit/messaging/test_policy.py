"""The text policies, against phrasings that must trip and phrasings that must not."""

from __future__ import annotations

import pytest

from carerelay.messaging.policy import is_courtesy, looks_like_critical_result, looks_like_order

ORDERS = [
    "give 2 mg morphine IV now", "start heparin drip", "please order a CBC", "give 40 mEq KCl now",
    "Give 40 mEq KCl now", "pls start vanc", "can you order a chest x-ray", "Hang 1L NS bolus",
    "morphine 2 mg IV q4h prn", "Order a BMP for the AM", "could you please order blood cultures x2",
    "increase insulin drip to 5 units/hr", "d/c the foley and give lasix 40 IV", "Please give tylenol 650 mg PO",
    "let's start antibiotics", "Can you draw a lactate?", "Repeat K+ in 2 hours please", "transfuse 1 unit PRBCs",
    "go ahead and order an echo", "metoprolol 25 mg PO bid",
]
NOT_ORDERS = [
    "the order set is in the EMR", "no thanks needed, patient stable?", "I put the orders in Epic",
    "In what order should we round?", "She is on heparin already", "the patient is in room 412",
    "out of order elevator on 4W", "Family wants to know the plan", "Labs look fine today",
    "We discussed the CT results with family", "he started feeling better", "Can you come see the patient in 412?",
    "Please call me back", "order of events was unclear", "I'll check on her after rounds",
    "the heparin protocol is in the order set", "BP 120/80, HR 72",
]
CRITICAL = [
    "critical potassium 6.8", "K 6.8 critical", "critical lab value on bed 12", "panic value troponin 2.3",
    "Critical result: K+ 6.8", "potassium is critically high at 6.9", "glucose 35 critical",
]
NOT_CRITICAL = [
    "patient is critical but stable", "this is critical, please come now", "critical care consult placed",
    "the ICU is at critical capacity", "K 4.1 normal", "critical thinking needed",
]
COURTESY = ["thanks", "Thank you!", "ok thx 👍", "Thanks!!", "ty", "Got it, thanks", "👍", "ok", "Roger that",
            "thank you so much 🙏", "Noted, thanks."]
NOT_COURTESY = [
    "no thanks needed, patient stable?", "thanks, can you also check the K?", "ok give the lasix",
    "Thanks for the update on 412 - will see her at 3", "ok?", "no", "yes", "sure thing, coming now",
    "thanks but she is still hypotensive",
]


@pytest.mark.parametrize("text", ORDERS)
def test_order_like_text_is_flagged(text: str) -> None:
    assert looks_like_order(text)


@pytest.mark.parametrize("text", NOT_ORDERS)
def test_prose_about_orders_is_not_flagged(text: str) -> None:
    assert not looks_like_order(text)


@pytest.mark.parametrize("text", CRITICAL)
def test_critical_result_text_is_flagged(text: str) -> None:
    assert looks_like_critical_result(text)


@pytest.mark.parametrize("text", NOT_CRITICAL)
def test_critical_condition_prose_is_not_flagged(text: str) -> None:
    assert not looks_like_critical_result(text)


@pytest.mark.parametrize("text", COURTESY)
def test_courtesy_replies_are_recognised(text: str) -> None:
    assert is_courtesy(text)


@pytest.mark.parametrize("text", NOT_COURTESY)
def test_replies_with_content_are_not_courtesy(text: str) -> None:
    assert not is_courtesy(text)
