"""Bedrock Guardrails evaluated locally: the control plane and the assessment.

How each policy is checked offline (AWS uses its own classifiers; these are the nearest
honest methods, and labs say so):

* Denied topics: each sentence of the text is embedded with all-MiniLM-L6-v2 and
  compared with the topic's definition and examples; a cosine similarity of at least
  :data:`TOPIC_THRESHOLD` to any of them detects the topic.
* Content filters (HATE, INSULTS, SEXUAL, VIOLENCE, MISCONDUCT, PROMPT_ATTACK): keyword
  and phrase lexicons per category, each entry with a confidence (LOW, MEDIUM, HIGH).
  As on AWS, a filter's strength sets the lowest confidence it blocks: HIGH blocks
  LOW and above, MEDIUM blocks MEDIUM and HIGH, LOW blocks HIGH only, NONE nothing.
  Lexicons catch explicit wording only; paraphrases and context escape them.
* Word filters: custom words and phrases, matched case-insensitively on word
  boundaries; the managed PROFANITY list is a fixed English list in this module.
* Sensitive information: regular expressions per PII type (credit card numbers must
  also pass the Luhn check), BLOCK or ANONYMIZE (replaced by ``{TYPE}``); custom
  regexes likewise. Types that need a named-entity model (NAME, ADDRESS, AGE,
  USERNAME, PASSWORD, LICENSE_PLATE, ...) are accepted but never detected offline.
* Contextual grounding: the GROUNDING/RELEVANCE scores are embedding similarities of
  the answer to the grounding source and to the query (AWS uses a trained model).

Assessments, usage units and ``action``/``outputs`` have ApplyGuardrail's structure.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import time
import uuid
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from .errors import BedrockError, not_found, validation

TOPIC_THRESHOLD = 0.44
CONFIDENCE = ("NONE", "LOW", "MEDIUM", "HIGH")
_BLOCKS_FROM = {"NONE": 99, "LOW": 3, "MEDIUM": 2, "HIGH": 1}  # lowest confidence index blocked

# Content filter lexicons: phrase -> confidence. Explicit wording only (see module doc).
LEXICONS: dict[str, dict[str, str]] = {
    "VIOLENCE": {"kill": "HIGH", "murder": "HIGH", "shoot": "MEDIUM", "stab": "HIGH", "bomb": "HIGH",
                 "attack": "LOW", "hurt": "LOW", "beat up": "MEDIUM", "torture": "HIGH", "massacre": "HIGH",
                 "weapon": "LOW", "assault": "MEDIUM", "strangle": "HIGH", "blow up": "HIGH"},
    "HATE": {"inferior race": "HIGH", "subhuman": "HIGH", "ethnic cleansing": "HIGH", "go back to your country":
             "MEDIUM", "racist": "LOW", "bigot": "LOW", "hate all": "MEDIUM", "white supremacy": "HIGH"},
    "INSULTS": {"idiot": "MEDIUM", "stupid": "MEDIUM", "moron": "HIGH", "dumb": "LOW", "loser": "MEDIUM",
                "pathetic": "LOW", "worthless": "MEDIUM", "imbecile": "HIGH", "you suck": "MEDIUM",
                "shut up": "LOW", "ugly": "LOW"},
    "SEXUAL": {"porn": "HIGH", "pornography": "HIGH", "nude": "MEDIUM", "naked": "MEDIUM", "explicit sex": "HIGH",
               "sexual": "LOW", "erotic": "MEDIUM", "xxx": "HIGH"},
    "MISCONDUCT": {"steal": "MEDIUM", "shoplift": "HIGH", "launder money": "HIGH", "money laundering": "HIGH",
                   "make a bomb": "HIGH", "hack into": "HIGH", "buy drugs": "HIGH", "counterfeit": "HIGH",
                   "evade taxes": "HIGH", "phishing": "MEDIUM", "bribe": "MEDIUM", "fraud": "LOW",
                   "illegal": "LOW"},
    "PROMPT_ATTACK": {"ignore previous instructions": "HIGH", "ignore all previous instructions": "HIGH",
                      "ignore the above": "HIGH", "disregard your instructions": "HIGH",
                      "disregard previous": "HIGH", "forget your instructions": "HIGH",
                      "you are now dan": "HIGH", "do anything now": "MEDIUM", "jailbreak": "MEDIUM",
                      "reveal your system prompt": "HIGH", "system prompt": "LOW",
                      "pretend you have no restrictions": "HIGH", "developer mode": "MEDIUM"},
}

PROFANITY = ("fuck", "fucking", "fucker", "motherfucker", "shit", "bullshit", "shitty", "bitch", "bastard",
             "asshole", "arsehole", "damn", "goddamn", "crap", "dick", "prick", "piss", "pissed", "bollocks",
             "wanker", "twat", "cunt", "douchebag", "jackass", "dumbass", "son of a bitch", "bloody hell")


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


# PII type -> (regex, extra check). Order matters: longer/more specific first.
PII_PATTERNS: dict[str, tuple[re.Pattern[str], Any]] = {
    "EMAIL": (re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), None),
    "CREDIT_DEBIT_CARD_NUMBER": (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), _luhn),
    "US_SOCIAL_SECURITY_NUMBER": (re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"), None),
    "PHONE": (re.compile(r"(?<![\w-])(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}\b"
                         r"|(?<!\w)\+\d{1,3}[ .-]?\d{2,4}[ .-]?\d{3,4}[ .-]?\d{3,4}\b"), None),
    "AWS_ACCESS_KEY": (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), None),
    "AWS_SECRET_KEY": (re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
                       lambda s: any(c.isdigit() for c in s) and any(c.isupper() for c in s)),
    "IP_ADDRESS": (re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), None),
    "URL": (re.compile(r"\bhttps?://[^\s<>\"']+"), None),
    "CREDIT_DEBIT_CARD_EXPIRY": (re.compile(r"\b(?:0[1-9]|1[0-2])/(?:\d{2}|\d{4})\b"), None),
    "CREDIT_DEBIT_CARD_CVV": (re.compile(r"(?i)\bcvv2?\s*:?\s*\d{3,4}\b"), None),
    "US_BANK_ROUTING_NUMBER": (re.compile(r"(?i)\brouting(?: number)?\s*:?\s*\d{9}\b"), None),
    "US_PASSPORT_NUMBER": (re.compile(r"(?i)\bpassport(?: number| no\.?)?\s*:?\s*[A-Z0-9]{9}\b"), None),
    "UK_NATIONAL_INSURANCE_NUMBER": (re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"),
                                     None),
    "MAC_ADDRESS": (re.compile(r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b"), None),
}


# --- control plane --------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Guardrail:
    guardrail_id: str
    arn: str
    config: dict[str, Any]  # name, description, policy configs, blocked messaging
    created_at: dt.datetime = field(default_factory=_now)
    updated_at: dt.datetime = field(default_factory=_now)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # "1" -> frozen config
    version_descriptions: dict[str, str | None] = field(default_factory=dict)

    def snapshot(self, version: str | None) -> dict[str, Any]:
        if version in (None, "", "DRAFT"):
            return self.config
        if version not in self.versions:
            raise not_found(f"Guardrail {self.guardrail_id} version {version} was not found.")
        return self.versions[version]


_POLICY_KEYS = {"topicPolicyConfig": "topicPolicy", "contentPolicyConfig": "contentPolicy",
                "wordPolicyConfig": "wordPolicy", "sensitiveInformationPolicyConfig": "sensitiveInformationPolicy",
                "contextualGroundingPolicyConfig": "contextualGroundingPolicy"}


def _validate_config(params: dict[str, Any]) -> None:
    if len(params.get("name", "")) > 50:
        raise validation("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must "
                         "have length less than or equal to 50")
    for key in ("blockedInputMessaging", "blockedOutputsMessaging"):
        if len(params.get(key, "")) > 500:
            raise validation(f"1 validation error detected: Value at '{key}' failed to satisfy constraint: "
                             "Member must have length less than or equal to 500")
    topics = (params.get("topicPolicyConfig") or {}).get("topicsConfig", [])
    names = [t["name"] for t in topics]
    if len(set(names)) != len(names):
        raise validation("Topic names must be unique within a guardrail.")
    for t in topics:
        if len(t.get("examples", [])) > 5:
            raise validation(f"1 validation error detected: Value at 'topicPolicyConfig.topicsConfig.member."
                             f"examples' failed to satisfy constraint: Member must have length less than or equal "
                             f"to 5 (topic {t['name']!r})")
        if len(t["definition"]) > 200:
            raise validation(f"Topic definition for {t['name']!r} is longer than 200 characters.")
    for f in (params.get("contentPolicyConfig") or {}).get("filtersConfig", []):
        if f["type"] == "PROMPT_ATTACK" and f.get("outputStrength", "NONE") != "NONE":
            raise validation("PROMPT_ATTACK content filter strength for response must be NONE.")
    for r in (params.get("sensitiveInformationPolicyConfig") or {}).get("regexesConfig", []):
        try:
            re.compile(r["pattern"])
        except re.error as err:
            raise validation(f"Invalid regex pattern for {r['name']!r}: {err}.") from None
    if "contextualGroundingPolicyConfig" in params:
        for f in params["contextualGroundingPolicyConfig"]["filtersConfig"]:
            if not 0 <= f["threshold"] < 1:
                raise validation("Contextual grounding threshold must be between 0 and 0.99.")


class GuardrailStore:
    """The account's guardrails (what the ``bedrock`` control plane keeps)."""

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self.guardrails: dict[str, Guardrail] = {}
        self._lock = threading.Lock()

    def _arn(self, gid: str) -> str:
        return f"arn:aws:bedrock:{self.region}:{self.account_id}:guardrail/{gid}"

    def find(self, identifier: str) -> Guardrail:
        gid = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
        g = self.guardrails.get(gid)
        if g is None:
            raise not_found(f"Guardrail {identifier} was not found.")
        return g

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        _validate_config(params)
        with self._lock:
            if any(g.config["name"] == params["name"] for g in self.guardrails.values()):
                raise BedrockError("ConflictException",
                                   f"A guardrail with the name {params['name']} already exists.", 409)
            gid = uuid.uuid4().hex[:12]
            config = {k: deepcopy(v) for k, v in params.items() if k not in ("clientRequestToken", "tags")}
            g = Guardrail(gid, self._arn(gid), config)
            self.guardrails[gid] = g
        return {"guardrailId": gid, "guardrailArn": g.arn, "version": "DRAFT", "createdAt": g.created_at}

    def update(self, params: dict[str, Any]) -> dict[str, Any]:
        g = self.find(params["guardrailIdentifier"])
        _validate_config(params)
        g.config = {k: deepcopy(v) for k, v in params.items() if k != "guardrailIdentifier"}
        g.updated_at = _now()
        return {"guardrailId": g.guardrail_id, "guardrailArn": g.arn, "version": "DRAFT", "updatedAt": g.updated_at}

    def create_version(self, identifier: str, description: str | None = None) -> dict[str, Any]:
        g = self.find(identifier)
        version = str(len(g.versions) + 1)
        g.versions[version] = deepcopy(g.config)
        g.version_descriptions[version] = description
        return {"guardrailId": g.guardrail_id, "version": version}

    def describe(self, identifier: str, version: str | None = None) -> dict[str, Any]:
        g = self.find(identifier)
        config = g.snapshot(version)
        out: dict[str, Any] = {"name": config["name"], "guardrailId": g.guardrail_id, "guardrailArn": g.arn,
                               "version": version or "DRAFT", "status": "READY"}
        description = g.version_descriptions.get(version or "") or config.get("description")
        if description:
            out["description"] = description
        for src, dst in _POLICY_KEYS.items():
            if src in config:
                out[dst] = _policy_view(src, config[src])
        out.update({"createdAt": g.created_at, "updatedAt": g.updated_at,
                    "blockedInputMessaging": config["blockedInputMessaging"],
                    "blockedOutputsMessaging": config["blockedOutputsMessaging"]})
        return out

    def list(self, identifier: str | None = None) -> list[dict[str, Any]]:
        if identifier:
            g = self.find(identifier)
            items = [(g, v) for v in ["DRAFT", *g.versions]]
        else:
            items = [(g, "DRAFT") for g in self.guardrails.values()]
        out = []
        for g, v in items:
            c = g.snapshot(v)
            s = {"id": g.guardrail_id, "arn": g.arn, "status": "READY", "name": c["name"], "version": v,
                 "createdAt": g.created_at, "updatedAt": g.updated_at}
            if c.get("description"):
                s["description"] = c["description"]
            out.append(s)
        return out

    def delete(self, identifier: str, version: str | None = None) -> None:
        g = self.find(identifier)
        if version:
            if version not in g.versions:
                raise not_found(f"Guardrail {identifier} version {version} was not found.")
            del g.versions[version]
        else:
            del self.guardrails[g.guardrail_id]


def _policy_view(src: str, config: dict[str, Any]) -> dict[str, Any]:
    """A policy as GetGuardrail shows it (``topicsConfig`` -> ``topics`` ...), defaults filled."""
    renames = {"topicsConfig": "topics", "filtersConfig": "filters", "wordsConfig": "words",
               "managedWordListsConfig": "managedWordLists", "piiEntitiesConfig": "piiEntities",
               "regexesConfig": "regexes", "tierConfig": "tier"}
    out: dict[str, Any] = {}
    for key, value in config.items():
        new = renames.get(key, key)
        if isinstance(value, list):
            items = []
            for item in value:
                item = dict(item)
                if "action" in item or key in ("topicsConfig", "filtersConfig", "wordsConfig",
                                               "managedWordListsConfig"):
                    item.setdefault("inputEnabled", True)
                    item.setdefault("outputEnabled", True)
                items.append(item)
            out[new] = items
        else:
            out[new] = value
    return out


# --- evaluation -------------------------------------------------------------------------------


@dataclass
class Assessment:
    """The outcome of applying a guardrail to some text."""

    action: str  # NONE | GUARDRAIL_INTERVENED
    outputs: list[dict[str, str]]
    assessment: dict[str, Any]
    usage: dict[str, int]
    blocked: bool
    masked_text: str | None
    action_reason: str


def _enabled(item: dict[str, Any], source: str, default_action: str) -> str:
    """The action (BLOCK/ANONYMIZE/NONE) an item takes for ``source`` (INPUT/OUTPUT)."""
    side = "input" if source == "INPUT" else "output"
    if item.get(f"{side}Enabled") is False:
        return "NONE"
    return item.get(f"{side}Action") or item.get("action") or default_action


def _phrase_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", re.I)


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    return parts or [text]


def evaluate(config: dict[str, Any], source: str, texts: list[str], *, grounding: str | None = None,
             query: str | None = None, guardrail: Guardrail | None = None, version: str = "DRAFT",
             output_scope: str = "INTERVENTIONS") -> Assessment:
    """Apply a guardrail ``config`` to ``texts`` as ``source`` (``INPUT`` or ``OUTPUT``)."""
    started = time.perf_counter()
    joined = "\n".join(texts)
    assessment: dict[str, Any] = {}
    blocked = False
    masked = list(texts)
    anonymized = False

    topics_cfg = (config.get("topicPolicyConfig") or {}).get("topicsConfig", [])
    if topics_cfg and joined.strip():
        from .embeddings import model

        sents = [s for t in texts for s in _sentences(t)]
        svec = model().encode(sents)
        found = []
        for t in topics_cfg:
            action = _enabled(t, source, "BLOCK")
            refs = model().encode([t["definition"], *t.get("examples", [])])
            score = float((svec @ refs.T).max())
            if score >= TOPIC_THRESHOLD:
                hit = action == "BLOCK"
                blocked |= hit
                found.append({"name": t["name"], "type": "DENY", "action": "BLOCKED" if hit else "NONE",
                              "detected": True})
        if found:
            assessment["topicPolicy"] = {"topics": found}

    filters_cfg = (config.get("contentPolicyConfig") or {}).get("filtersConfig", [])
    if filters_cfg:
        found = []
        for f in filters_cfg:
            if f["type"] == "PROMPT_ATTACK" and source == "OUTPUT":
                continue
            strength = f.get("inputStrength" if source == "INPUT" else "outputStrength", "NONE")
            action = _enabled(f, source, "BLOCK")
            level = 0
            for phrase, conf in LEXICONS[f["type"]].items():
                if _phrase_re(phrase).search(joined):
                    level = max(level, CONFIDENCE.index(conf))
            if level == 0:
                continue
            hit = level >= _BLOCKS_FROM[strength] and action == "BLOCK"
            blocked |= hit
            found.append({"type": f["type"], "confidence": CONFIDENCE[level], "filterStrength": strength,
                          "action": "BLOCKED" if hit else "NONE", "detected": True})
        if found:
            assessment["contentPolicy"] = {"filters": found}

    word_cfg = config.get("wordPolicyConfig") or {}
    if word_cfg:
        custom, managed = [], []
        for w in word_cfg.get("wordsConfig", []):
            m = _phrase_re(w["text"]).search(joined)
            if m:
                hit = _enabled(w, source, "BLOCK") == "BLOCK"
                blocked |= hit
                custom.append({"match": w["text"], "action": "BLOCKED" if hit else "NONE", "detected": True})
        for lst in word_cfg.get("managedWordListsConfig", []):
            action = _enabled(lst, source, "BLOCK")
            for word in PROFANITY:
                m = _phrase_re(word).search(joined)
                if m:
                    hit = action == "BLOCK"
                    blocked |= hit
                    managed.append({"match": m.group(0), "type": "PROFANITY",
                                    "action": "BLOCKED" if hit else "NONE", "detected": True})
        if custom or managed:
            assessment["wordPolicy"] = {"customWords": custom, "managedWordLists": managed}

    pii_cfg = config.get("sensitiveInformationPolicyConfig") or {}
    if pii_cfg:
        entities, regexes = [], []
        rules: list[tuple[str, str | None, re.Pattern[str], Any, str, bool]] = []
        for e in pii_cfg.get("piiEntitiesConfig", []):
            if e["type"] in PII_PATTERNS:
                pattern, check = PII_PATTERNS[e["type"]]
                rules.append((e["type"], None, pattern, check, _enabled(e, source, e["action"]), False))
        for r in pii_cfg.get("regexesConfig", []):
            rules.append((r["name"], r["pattern"], re.compile(r["pattern"]), None,
                          _enabled(r, source, r["action"]), True))
        for i in range(len(masked)):
            for name, raw_pattern, pattern, check, action, is_regex in rules:
                def replace(m: re.Match[str], name=name, raw_pattern=raw_pattern, check=check, action=action,
                            is_regex=is_regex) -> str:
                    nonlocal blocked, anonymized
                    if check is not None and not check(m.group(0)):
                        return m.group(0)
                    verdict = {"BLOCK": "BLOCKED", "ANONYMIZE": "ANONYMIZED"}.get(action, "NONE")
                    blocked |= verdict == "BLOCKED"
                    anonymized |= verdict == "ANONYMIZED"
                    if is_regex:
                        regexes.append({"name": name, "match": m.group(0), "regex": raw_pattern,
                                        "action": verdict, "detected": True})
                    else:
                        entities.append({"match": m.group(0), "type": name, "action": verdict, "detected": True})
                    return "{" + name + "}" if verdict == "ANONYMIZED" else m.group(0)

                masked[i] = pattern.sub(replace, masked[i])
        if entities or regexes:
            assessment["sensitiveInformationPolicy"] = {"piiEntities": entities, "regexes": regexes}

    grounding_cfg = (config.get("contextualGroundingPolicyConfig") or {}).get("filtersConfig", [])
    if grounding_cfg and source == "OUTPUT" and (grounding or query):
        from .embeddings import model

        found = []
        for f in grounding_cfg:
            if f.get("enabled") is False:
                continue
            ref = grounding if f["type"] == "GROUNDING" else query
            if not ref:
                continue
            v = model().encode([joined, ref])
            score = round(max(0.0, float(v[0] @ v[1])), 2)
            hit = score < f["threshold"] and f.get("action", "BLOCK") == "BLOCK"
            blocked |= hit
            found.append({"type": f["type"], "threshold": f["threshold"], "score": score,
                          "action": "BLOCKED" if hit else "NONE", "detected": score < f["threshold"]})
        if found:
            assessment["contextualGroundingPolicy"] = {"filters": found}

    units = math.ceil(len(joined) / 1000) if joined else 0
    usage = {"topicPolicyUnits": units if topics_cfg else 0,
             "contentPolicyUnits": units if filters_cfg else 0,
             "wordPolicyUnits": units if word_cfg else 0,
             # PII entity types are billed; custom regexes are the free units (Bedrock pricing page)
             "sensitiveInformationPolicyUnits": units if pii_cfg.get("piiEntitiesConfig") else 0,
             "sensitiveInformationPolicyFreeUnits": units if pii_cfg.get("regexesConfig") else 0,
             "contextualGroundingPolicyUnits": units if grounding_cfg else 0}
    assessment["invocationMetrics"] = {
        "guardrailProcessingLatency": int((time.perf_counter() - started) * 1000),
        "usage": usage,
        "guardrailCoverage": {"textCharacters": {"guarded": len(joined), "total": len(joined)}},
    }
    if guardrail is not None:
        assessment["appliedGuardrailDetails"] = {"guardrailId": guardrail.guardrail_id,
                                                 "guardrailVersion": version, "guardrailArn": guardrail.arn,
                                                 "guardrailOrigin": ["REQUEST"], "guardrailOwnership": "SELF"}
    if blocked:
        message = config["blockedInputMessaging" if source == "INPUT" else "blockedOutputsMessaging"]
        return Assessment("GUARDRAIL_INTERVENED", [{"text": message}], assessment, usage, True, message,
                          "Guardrail blocked.")
    if anonymized:
        return Assessment("GUARDRAIL_INTERVENED", [{"text": t} for t in masked], assessment, usage, False,
                          "\n".join(masked), "Guardrail masked.")
    outputs = [{"text": t} for t in texts] if output_scope == "FULL" else []
    return Assessment("NONE", outputs, assessment, usage, False, None, "No action.")
