"""Callers' numbers at rest: the keyed hash recognises a number however it is written, differs
by key (a database read without the key gives nothing away), and the masked form hides it."""

from __future__ import annotations

from hotline.records.privacy import caller_key, derive_key, mask, normalise


def test_the_same_number_written_differently_has_one_hash_and_another_key_another() -> None:
    key = derive_key("the replicas' shared secret")
    forms = ("+15555550123", "+1 555 555 0123", "+1 (555) 555-0123", " +1.555.555.0123 ")
    assert {normalise(f) for f in forms} == {"+15555550123"}
    assert len({caller_key(key, f) for f in forms}) == 1
    assert caller_key(key, "+15555550124") != caller_key(key, "+15555550123")
    assert caller_key(derive_key("another deployment"), "+15555550123") != caller_key(
        key, "+15555550123"
    )
    digest = caller_key(key, "+15555550123")
    assert digest is not None and len(digest) == 64 and "5555550123" not in digest
    assert caller_key(key, "") is None and caller_key(key, "   ") is None


def test_the_masked_form_keeps_only_the_ends() -> None:
    assert mask("+15555550123") == "+1555***0123"
    assert mask("+1 555 555 0123") == "+1555***0123"
    assert mask("+4412345") == "+44***45"
    assert mask("anonymous") == "***" and mask("123") == "***" and mask("") == ""
