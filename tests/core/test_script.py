"""Call scripts: the built-in artist hotline and validation of user scripts."""

from __future__ import annotations

import re
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.script import CallScript, MenuEntry, default_script, load_script
from hotline.errors import ConfigError

MINIMAL = """
greeting = "Hi."
goodbye = "Bye."
invalid_digit = "Nope."
"""


def test_default_script_is_an_artist_hotline() -> None:
    s = default_script()
    assert isinstance(s, CallScript)
    assert "hotline" in s.greeting.lower()
    for needle in ("1", "2", "3", "9", "0"):
        assert f"{needle} " in s.greeting or f"{needle}," in s.greeting
    assert {"1", "2", "3", "9", "0"} <= set(s.menu)
    assert s.goodbye_digit == "0"
    assert s.menu["0"] == MenuEntry(s.goodbye, hangup=True)
    assert [d for d, e in s.menu.items() if e.hangup] == ["0"]
    assert default_script() is s  # loaded once


def test_default_script_lines_fit_a_phone() -> None:
    s = default_script()
    lines = [s.greeting, s.goodbye, s.invalid_digit, *(e.say for e in s.menu.values())]
    for line in lines:
        assert line == line.strip() and "  " not in line and "\n" not in line
        sentences = [x for x in re.split(r"(?<=[.!?])\s+", line) if x]
        assert 1 <= len(sentences) <= 3, line
        assert len(line) <= 260, line


def test_entry_for() -> None:
    s = default_script()
    assert s.entry_for("1") is s.menu["1"]
    assert s.entry_for("7") == MenuEntry(s.invalid_digit)
    assert s.entry_for("#") == MenuEntry(s.invalid_digit)
    assert s.entry_for("0").hangup
    assert s.goodbye_entry == MenuEntry(s.goodbye, hangup=True)


def test_minimal_script() -> None:
    s = load_script(MINIMAL)
    assert s == CallScript("Hi.", {}, "Bye.", None, "Nope.", None)
    assert s.entry_for("1") == MenuEntry("Nope.")


def test_full_script() -> None:
    s = load_script(
        MINIMAL
        + """
goodbye_digit = "#"
[menu]
1 = "One."
"*" = { say = "Star.", hangup = true }
2 = { say = "  Two.  " }
[voice_settings]
stability = 0.3
similarity_boost = 1
style = 0
use_speaker_boost = false
speed = 1.2
"""
    )
    assert dict(s.menu) == {
        "#": MenuEntry("Bye.", True),
        "*": MenuEntry("Star.", True),
        "1": MenuEntry("One."),
        "2": MenuEntry("Two."),
    }
    assert s.voice_settings == {
        "stability": 0.3,
        "similarity_boost": 1.0,
        "style": 0.0,
        "use_speaker_boost": False,
        "speed": 1.2,
    }
    assert isinstance(s.menu, types.MappingProxyType)
    assert isinstance(s.voice_settings, types.MappingProxyType)
    with pytest.raises(TypeError):
        s.menu["5"] = MenuEntry("x")  # type: ignore[index]


def test_turns_table_takes_min_confidence() -> None:
    s = load_script(MINIMAL + "\n[turns]\nmin_confidence = 0.75\nthreshold = 1\n")
    assert s.turns == {"min_confidence": 0.75, "threshold": 1.0}


def test_table_style_menu() -> None:
    s = load_script(MINIMAL + '\n[menu.1]\nsay = "One."\nhangup = true\n')
    assert s.menu["1"] == MenuEntry("One.", True)


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ("greeting2 = 'x'", r"line 5: greeting2: unknown key"),
        ("[menu]\n1 = 3", r"line 6: menu\.1: expected a string or a table, got an integer"),
        ("[menu]\n1 = ''", r"line 6: menu\.1: must not be empty"),
        ("[menu]\n1 = '   '", r"menu\.1: must not be empty"),
        ("[menu]\n5 = { sy = 'x' }", r"menu\.5\.sy: unknown key"),
        ("[menu]\n5 = { hangup = true }", r"menu\.5\.say: missing"),
        ("[menu]\n5 = { say = 'x', hangup = 'yes' }", r"menu\.5\.hangup: expected true or false"),
        ("[menu]\n12 = 'x'", r"line 6: menu\.12: must be one key"),
        ("[menu]\nx = 'x'", r"menu\.x: must be one key"),
        ("menu = 'x'", r"line 5: menu: expected a table"),
        ("goodbye_digit = 0", r"line 5: goodbye_digit: must be one key"),
        ("goodbye_digit = '0'\n[menu]\n0 = 'x'", r"goodbye_digit: key 0 is also in \[menu\]"),
        (
            "[voice_settings]\nspeed = 2.0",
            r"line 6: voice_settings\.speed: must be within 0\.7\.\.1\.2",
        ),
        ("[voice_settings]\nstability = -0.1", r"voice_settings\.stability: must be within"),
        ("[voice_settings]\nstability = 'high'", r"voice_settings\.stability: expected a number"),
        ("[voice_settings]\nstability = true", r"voice_settings\.stability: expected a number"),
        ("[voice_settings]\nuse_speaker_boost = 1", r"use_speaker_boost: expected true or false"),
        ("[voice_settings]\nloudness = 1", r"voice_settings\.loudness: unknown voice setting"),
        ("voice_settings = [1]", r"voice_settings: expected a table"),
        ("[menu]\n1 = '" + "x" * 2001 + "'", r"menu\.1: longer than 2000"),
        ("[turns]\nmin_confidence = 1.5", r"turns\.min_confidence: .*within 0\.\.1"),
        ("[turns]\nthreshold = 'high'", r"turns\.threshold: .*a number within 0\.\.1"),
        ("[turns]\nmin_conf = 0.5", r"turns\.min_conf: unknown key"),
    ],
)
def test_invalid_scripts_name_line_and_field(extra: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_script(MINIMAL + extra, source="my.toml")
    with pytest.raises(ConfigError, match=r"^my\.toml"):
        load_script(MINIMAL + extra, source="my.toml")


@pytest.mark.parametrize("key", ["greeting", "goodbye", "invalid_digit"])
def test_required_lines(key: str) -> None:
    text = "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(key))
    with pytest.raises(ConfigError, match=f"{key}: missing"):
        load_script(text)
    with pytest.raises(ConfigError, match=f"{key}: expected a string"):
        load_script(text + f"\n{key} = 5\n")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("greeting = \nx = 1\n", "line 1"),
        ("[menu\n1 = 'x'\n", "line 1"),
        ("x = 1\na = 'b' = 'c'\n", "line 2"),
        ('greeting = "x"\ngreeting = "y"\nz = 1\n', "line 2"),
        ("greeting = ", "end of document"),
    ],
)
def test_invalid_toml_reports_position(text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=rf"^call script: invalid TOML: .*\(at {where}"):
        load_script(text)


def test_deeply_nested_toml() -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_script("greeting = " + "[" * 100_000)


_KEYS = ["greeting", "goodbye", "invalid_digit", "goodbye_digit", "menu", "voice_settings",
         "say", "hangup", "speed", "stability", "1", "0", "*", "x"]  # fmt: skip
_toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-2, 2)
    | st.text(max_size=12)
    | st.sampled_from(["1", "0", "*", "Hi."]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), c, max_size=4),
    max_leaves=15,
)


def _to_toml(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_to_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f'"{k}" = {_to_toml(v)}' for k, v in value.items()) + "}"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=200)
    | st.dictionaries(st.sampled_from(_KEYS[3:]), _toml_values, max_size=7).map(
        lambda d: MINIMAL + "\n".join(f'"{k}" = {_to_toml(v)}' for k, v in d.items())
    )
)
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    try:
        script = load_script(text)
    except ConfigError as exc:
        assert str(exc).startswith("call script")
        return
    assert isinstance(script, CallScript)
    for entry in script.menu.values():
        assert isinstance(entry, MenuEntry) and entry.say.strip() and isinstance(entry.hangup, bool)


# ------------------------------------------------------------------------ [relay]

#: A ConversationRelay app's TwiML, attribute by attribute (the README's example):
#:   <ConversationRelay url="wss://app.example.com/ws" welcomeGreeting="Hi! Ask me anything."
#:       welcomeGreetingInterruptible="none" language="es-MX" ttsLanguage="es-ES"
#:       dtmfDetection="true" interruptible="speech" partialPrompts="true"
#:       hints="Wren Calloway, Paper Lanterns">
#:     <Parameter name="caller_phone" value="{{From}}"/>
#:     <Parameter name="tier" value="gold"/>
#:   </ConversationRelay>
RELAY_TABLE = """
[relay]
welcomeGreeting = "Hi! Ask me anything."
welcomeGreetingInterruptible = "none"
language = "es-MX"
ttsLanguage = "es-ES"
dtmfDetection = true
interruptible = "speech"
partialPrompts = true
hints = "Wren Calloway, Paper Lanterns,  ,paper lanterns"

[relay.parameters]
caller_phone = "{{From}}"
tier = "gold"
greeting = "call from {{ From }} to {{To}} via {{Nope}}"
"""


def test_relay_table_mirrors_conversation_relay() -> None:
    from hotline.core.script import Interruptible, RelaySettings

    assert default_script().relay == RelaySettings()  # Twilio's defaults
    relay = load_script(MINIMAL + RELAY_TABLE).relay
    assert relay.welcome_greeting == "Hi! Ask me anything."
    assert relay.welcome_greeting_interruptible is Interruptible.NONE
    assert relay.tts_language == "es-ES" and relay.transcription_language == "es-MX"
    assert relay.dtmf_detection and relay.partial_prompts
    assert relay.interruptible.by_speech and not relay.interruptible.by_digit
    assert relay.hints == ("Wren Calloway", "Paper Lanterns", "paper lanterns")
    assert load_script(MINIMAL + RELAY_TABLE).keyterms() == ("Wren Calloway", "Paper Lanterns")
    assert relay.webhook_fields() == ("From", "To", "Nope")
    webhook = {"From": "+15550001234", "To": "+15550009999", "CallSid": "CA1"}
    assert relay.custom_parameters(webhook) == {
        "caller_phone": "+15550001234",
        "tier": "gold",
        "greeting": "call from +15550001234 to +15550009999 via ",
    }
    assert load_script(MINIMAL + "[relay]\ninterruptible = false\n").relay.interruptible is (
        Interruptible.NONE
    )


@pytest.mark.parametrize(
    ("table", "pattern"),
    [
        ('[relay]\nlanguage = "english please"', r"line 6: relay\.language: expected a BCP-47"),
        ('[relay]\ninterruptible = "sometimes"', r"relay\.interruptible: expected one of none"),
        ('[relay]\ndtmfDetection = "yes"', r"relay\.dtmfDetection: expected true or false"),
        ('[relay]\nvoice = "x"', r"relay\.voice: unknown key"),
        ("[relay]\nparameters = { a = 1 }", r"relay\.parameters\.a: expected a string"),
        ('[relay]\nwelcomeGreeting = ""', r"relay\.welcomeGreeting: must not be empty"),
        ("relay = 3", r"relay: expected a table"),
    ],
)
def test_relay_table_errors_name_the_field(table: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_script(MINIMAL + table)
