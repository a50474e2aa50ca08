"""Rules that target the mechanism of an injection rather than its words: an order to drop prior
instructions, a fake turn or role boundary, a request for the hidden prompt, a persona without
rules, an exfiltration link, an instruction addressed to the AI inside data. Several languages.

Each rule has a weight in (0, 1); matched rules combine as a noisy OR: 1 − Π(1 − weight).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

F = re.IGNORECASE | re.UNICODE


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    alternatives: tuple[re.Pattern, ...]
    # Only for a rule with an alternative that has no literal start (see guard/matcher.py): lower-case
    # substrings one of which every match of it contains; it is searched in a window around them.
    anchors: tuple[str, ...] = ()

    def search(self, text: str) -> re.Match | None:
        """The first alternative's match, by a plain regex search of the whole text (the reference
        that the one-pass matcher is tested against)."""
        return next((m for a in self.alternatives if (m := a.search(text))), None)


def _rule(name: str, weight: float, *alternatives: str, anchors: tuple[str, ...] = ()) -> Rule:
    return Rule(name, weight, tuple(re.compile(a, F) for a in alternatives), anchors)


_DROP = r"ignore|ignoring|disregard|forget|omit|skip|bypass|override|overrule|discard|drop|neglect|abandon|set aside|throw out|delete|erase|cancel"
_PRIOR = r"(?:all|any|every|the|your|my|these|those|previous|prior|above|earlier|preceding|foregoing|initial|original|old|other|system|developer|default|following|remaining|rest of the)"
_ORDERS = r"instructions?|directions?|directives?|rules|prompts?|commands?|guidelines|orders|programming|constraints|restrictions|guardrails|policies|safeguards|training|tasks?"
# Words that are only an order when something says they came before ("ignore the noise in this data" is fine).
_PRIOR_STRICT = r"(?:previous|prior|above|earlier|preceding|foregoing|rest of (?:the|this)|everything (?:above|before))"
_CONTENT = r"text|messages?|conversation|input|data|context|content|document"

OVERRIDE_PHRASES = [
    # English: "ignore (all) (previous) instructions", with up to three words between
    rf"\b(?:{_DROP})\b(?:\W+\w+){{0,3}}?\W+{_PRIOR}\b(?:\W+\w+){{0,4}}?\W+(?:{_ORDERS})\b",
    rf"\b(?:{_DROP})\b(?:\W+\w+){{0,2}}?\W+{_PRIOR_STRICT}\b(?:\W+\w+){{0,3}}?\W+(?:{_CONTENT})\b",
    r"\b(?:forget|vergiss|oublie[zr]?|olvida|olvide|dimentica|esquece|esqueça)\s+(?:about\s+)?(?:everything|alles|tout|todo|tutto|tudo)\b",
    r"\b(?:override|ignore|disregard)\b[^.\n]{0,40}\band (?:instead )?(?:output|print|report|say|respond|reply|write)\b",
    rf"\b(?:{_DROP})\b\W+(?:everything|anything|all)\b(?:\W+\w+){{0,4}}?\W+(?:said|told|above|before|previously|prior|earlier)",
    r"\b(?:do not|don't|never)\s+(?:follow|obey|listen to|comply with)\s+(?:\w+\s+){0,3}(?:instructions|rules|guidelines|system prompt|directions)",
    r"\bnevermind\b[\s.,!]*(?:ignore|forget|instead)",
    # German
    r"\b(?:ignorier\w*|vergiss|vergessen\s+sie|missachte\w*|überspring\w*)\b(?:\W+\w+){0,4}?\W+(?:anweisung\w*|befehl\w*|aufträge|auftrag|regeln|vorgaben|instruktion\w*|anordnung\w*)",
    # French
    r"\b(?:ignore[rz]?|oublie[rz]?|néglige[rz]?|ne tiens pas compte)\b(?:\W+\w+){0,4}?\W+(?:instructions?|consignes?|directives?|règles|ordres)",
    # Spanish / Portuguese / Italian
    r"\b(?:ignora|ignore|ignorar|olvida|olvide|olvidar|esquece|esqueça|dimentica|trascura)\b(?:\W+\w+){0,4}?\W+(?:instrucciones|instruções|instruzioni|indicaciones|reglas|regras|regole|órdenes|ordens|comandos)",
    # Dutch, Polish, Turkish, Romanian, Swedish
    r"\b(?:negeer|vergeet)\b(?:\W+\w+){0,4}?\W+(?:instructies|opdrachten|regels)",
    r"\b(?:zignoruj|zapomnij|pomiń)\b(?:\W+\w+){0,4}?\W+(?:instrukcje|polecenia|zasady)",
    r"\b(?:talimatları|komutları|kuralları)\b(?:\W+\w+){0,2}?\W+(?:yok say|unut|görmezden gel)",
    r"\b(?:ignoră|ignorați|uită)\b(?:\W+\w+){0,4}?\W+(?:instrucțiunile|instructiunile|regulile)",
    r"\b(?:ignorera|glöm)\b(?:\W+\w+){0,4}?\W+(?:instruktioner|regler)",
    # Russian, Ukrainian
    r"(?:игнорируй|игнорируйте|забудь|забудьте|проигнорируй|не обращай внимания на)(?:\W+\w+){0,4}?\W+(?:инструкци\w*|указани\w*|правил\w*|команд\w*)",
    # Chinese, Japanese, Korean
    r"(?:忽略|无视|無視|忘记|忘記|忘掉|不要理会|不要遵守)[^。\n]{0,12}(?:指令|指示|说明|規則|规则|提示|命令|要求|设定|設定)",
    r"(?:以前|前|上記|これまで)の?[^。\n]{0,8}(?:指示|命令|ルール|プロンプト)[^。\n]{0,6}(?:無視|忘れ)",
    r"(?:이전|위의|모든)[^.\n]{0,10}(?:지시|명령|규칙|지침)[^.\n]{0,8}(?:무시|잊어)",
    # Arabic, Hindi, Persian, Vietnamese, Indonesian
    r"(?:تجاهل|انس|إنس)[^.\n]{0,30}(?:التعليمات|الأوامر|القواعد|تعليمات)",
    r"(?:निर्देशों|निर्देश|नियमों)[^।\n]{0,30}(?:अनदेखा|भूल|नजरअंदाज)",
    r"(?:نادیده بگیر|فراموش کن)[^.\n]{0,30}(?:دستورالعمل|دستورات)|(?:دستورالعمل|دستورات)[^.\n]{0,30}(?:نادیده بگیر|فراموش کن)",
    r"\b(?:bỏ qua|quên)\b[^.\n]{0,30}(?:hướng dẫn|chỉ dẫn|lệnh|quy tắc)",
    r"\b(?:abaikan|lupakan)\b[^.\n]{0,30}(?:instruksi|perintah|aturan)",
]

RULES: list[Rule] = [
    _rule("override_instructions", 0.92, *OVERRIDE_PHRASES),
    _rule(
        "new_instructions",
        0.55,
        r"\b(?:new|updated|real|actual|true|revised|secret|hidden|additional)\s+(?:instructions?|task|orders|directives?|rules|system prompt)\s*[:\-]",
        r"\bfrom now on,?\s+(?:you|your|respond|answer|reply|act|only|always)",
        r"\byour (?:new|real|true|only) (?:task|job|goal|purpose|instructions?) (?:is|are|will be)\b",
        r"\binstead,?\s+(?:you (?:must|should|will)|just|only)?\s*(?:print|say|output|respond|reply|write|return|answer)\b",
        r"\b(?:stop|halt) everything\b",
        r"\b(?:giving you|here are|these are|follow) (?:your |my |the |some )?new (?:instructions|orders|rules)\b",
        r"\b(?:now|next),? (?:i have |here is |comes |we start with )?(?:a |your )?(?:new|next|different) task\b",
        r"\bnew task:",
        r"\b(?:nun|jetzt) folg\w* (?:eine |weitere )?(?:neue )?(?:aufgabe|anweisung)|\bnouvelle tâche\b|\bnueva tarea\b",
        r"\b(?:neue|nouvelle|nueva|nuova)s?\s+(?:aufgabe|anweisung\w*|tâche|instruction\w*|tarea|instrucci\w+|compito)\s*:",
        r"\b(?:konzentriere dich jetzt auf|concentre-toi maintenant sur|céntrate ahora en)",
    ),
    _rule(
        "fake_role_marker",
        0.9,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>",
        r"\[/?INST\]|<<\/?SYS>>|<\/?s>\s*\[INST",
        r"(?:^|\n)\s*#{2,}\s*(?:system|instruction|new instruction|admin|developer)\b",
        r"<\s*(?:system|admin|developer|sys)\s*>",
        r"\[(?:system|admin|developer|assistant)\](?:\s*\[(?:system|admin|developer|assistant)\])*",
        r"(?:^|\n)\s*(?:user|human|assistant)\s*:\s*(?:next|now|new|ignore|please|actually|forget|stop)\b",
        r"(?:^|\n)\s*(?:system|developer)\s*(?:message|prompt|override)?\s*:\s*\S",
        r"\n\s*(?:human|assistant|user)\s*:\s*[^\n]{0,200}\n\s*(?:human|assistant|user)\s*:",
        r"\b(?:end of (?:system )?(?:prompt|instructions)|begin(?:ning)? of (?:new|user) (?:prompt|instructions))\b",
        anchors=(
            "<|",
            "[inst",
            "[/inst",
            "<<sys",
            "</s>",
            "##",
            "<system",
            "<admin",
            "<developer",
            "<sys",
            "[system",
            "[admin",
            "[developer",
            "[assistant",
            "system",
            "developer",
            "human",
            "assistant",
            "user",
            "end of",
            "begin",
        ),
    ),
    _rule(
        "prompt_leak",
        0.75,
        r"\b(?:reveal|show|print|repeat|output|display|give|tell|spell|write|share|leak|dump|list|provide|recite|reproduce)\b(?:\W+\w+){0,4}?\W+(?:system prompt|initial prompt|original prompt|hidden prompt|pre-?prompt|your (?:instructions|prompt|rules|guidelines|configuration)|the (?:password|secret|passphrase|secret key))",
        r"\b(?:what|which) (?:are|were|is) (?:your|the|my|all) (?:\w+ )?(?:system |initial |original |hidden |secret |previous |prior |first )?(?:instructions|prompt|rules|password|secret)\b",
        r"\brepeat (?:the |this |all |everything |your )?(?:entire |whole )?(?:conversation|text|words|prompt|instructions)(?: above)?\b",
        r"\b(?:the )?(?:system prompt|password|secret) (?:is|was)\s*[:'\"]",
        r"\bwhat are you not (?:supposed|allowed) to (?:tell|say|reveal)",
        r"\bwhat were you told not to\b",
        r"\b(?:print|output|repeat|show|list|quote|reveal|summari[sz]e|translate|spell)\b(?:\W+\w+){0,3}?\W+(?:your|the) (?:system message|(?:previous|initial|original|first|last|hidden|secret) (?:\d+ )?(?:instructions|message|prompt|rules)|(?:\d+ )?(?:last|previous) instructions)",
        r"\b(?:print|output|repeat|quote|copy|show)\b(?:\W+\w+){0,2}?\W+(?:text|everything|words|lines) (?:above|before (?:this|my))",
        r"\bwhat is written (?:above|before)\b|\b(?:sentences|lines|words) before the text\b",
        r"\b(?:words?|letters?|characters?|sentences?|text|secret|password|content|everything)\b[^.\n]{0,30}\b(?:in|of|from) your (?:instructions|prompt|system prompt|rules|guidelines)\b",
        r"\b(?:beginning|start|top) of (?:this|the|your) (?:prompt|conversation|instructions)\b|\binformation in the prompt\b",
        r"\b(?:first|second|last|next) (?:letter|character|word)s? of (?:the|your) (?:password|secret|passphrase|key)",
        r"\b(?:zeige?|gib|verrate)\b(?:\W+\w+){0,4}?\W+(?:prompt|passwort|anweisungen|systemprompt)",
        r"\b(?:password|passwort|mot de passe|contraseña|пароль|密码|パスワード)\b",
    ),
    _rule(
        "jailbreak_persona",
        0.7,
        r"\bDAN\b|\bdo anything now\b|\bdeveloper mode\b|\bjailbr(?:eak|oken)\b|\bDUDE\b|\bAIM\b(?:\W+\w+){0,3}\W+machiavellian",
        r"\b(?:no|without|free of|free from|freed from|not bound by|break(?:ing)? free (?:of|from)) (?:any |all |the )?(?:restrictions|filters|limitations|censorship|ethical|moral|rules|guidelines|content polic\w+|openai polic\w+)",
        r"\b(?:unfiltered|uncensored|amoral|unrestricted|unethical|unbound) (?:ai|assistant|chatbot|model|version|mode|response)",
        r"\b(?:ignore|violate|break|bypass) (?:the |any |all )?(?:openai|content|safety|ethical) (?:polic\w+|guidelines|rules|filters)",
        r"\bstay in character\b|\bbreak(?:ing)? character\b",
        r"\b(?:you are|you're|act as|pretend (?:to be|you are))\b[^.\n]{0,80}\b(?:no (?:rules|limits|restrictions|filters)|not (?:bound|restricted)|can do anything|never refuses?)",
        r"\b(?:opposite mode|evil (?:mode|confidant|twin)|anti-?gpt|chaos mode|god mode)\b",
        r"\b(?:do|say|answer|reply|replies|respond\w*) (?:with )?the opposite of what\b|\bopposite machine\b",
        r"\bopenai(?:'s)? (?:content |usage |safety )?(?:polic(?:y|ies)|guidelines|rules|restrictions)\b",
        r"\b(?:transform into|embody|simulate|emulate|you are now|you will now be|you're now)\b[^.\n]{0,40}?\b(?:an? |the )?(?:\w+ )?(?:ai|chatbot|language model|bot|gpt)\b",
        r"\bbreak the (?:\w+ )?rules\b|\bmandatory (?:\w+ )?warning\b",
    ),
    _rule(
        "exfiltration_link",
        0.85,
        r"!\[[^\]]*\]\(\s*https?://[^)\s]*[?&][^)\s]*=[^)\s]*\)",
        r"!\[[^\]]*\]\(\s*https?://[^)]*(?:\{|%7B|\$\(|<)",
        r"\b(?:append|add|include|encode|attach)\b[^.\n]{0,60}\b(?:to|in|into) (?:the |this |a )?(?:url|link|query string|image (?:url|link))\b",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|leak)\b[^.\n]{0,80}\bhttps?://",
    ),
    _rule(
        "instruction_to_ai_in_data",
        0.6,
        r"\b(?:if you are|dear|attention,?|note to|message for|hey|hi)\s+(?:an?|the|any)?\s*(?:ai|a\.i\.|llm|language model|chatbot|gpt|assistant|bot|model)\b(?:\s+(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing) (?:this|these))?",
        r"\b(?:ai|llm|assistant|language model)s?\s+(?:reading|processing|summari[sz]ing) (?:this|these)\b",
        r"\bnote to (?:any |the )?(?:automated|ai|llm|machine)[- ]?(?:analysis|screening|review|reading|processing)?\s*(?:software|system|tool|model|reader|agent)?",
        r"\bwhen (?:summari[sz]ing|translating|analy[sz]ing|processing) (?:this|these|the) (?:document|email|page|text|text above|resume|cv|file)\b",
        r"\b(?:instead of|rather than) (?:summari[sz]ing|translating|analy[sz]ing|answering|classifying)",
    ),
    _rule(
        "forced_output",
        0.45,
        r"\b(?:just|only|simply)\s+(?:print|say|output|write|reply with|respond with|answer with|return)\s*[:\"'“‘«]",
        r"\b(?:print|say|output|respond with|reply with)\s+(?:exactly|only|verbatim)\b",
        r"\btranslate (?:this|the following) (?:sentence )?as\s*[\"'“]",
        r"\b(?:the|this) domain(?: name)? is (?:\w+ )?not malicious\b|\bthis (?:document|text) is (?:safe|not malicious)\b",
        r"\bif (?:asked|questioned|queried|anyone asks)\b[^.\n]{0,60}\b(?:say|report|answer|reply|respond|state|tell)\b",
        r"\b(?:classify|mark|label|report|treat) (?:this|the) (?:domain|record|entry|email|transaction|file|document|candidate|applicant) as (?:not malicious|safe|legitimate|approved|clean|verified|qualified)",
        r"\b(?:i hate|kill all) humans\b|\bhaha pwned\b|\bpwned\b",
    ),
]

SIGNAL_WEIGHTS = {
    "unicode_tags": 0.9,
    "role_tag": 0.6,
    "hidden_html": 0.5,
    "html_comment": 0.2,
    "base64_payload": 0.3,
    "hex_payload": 0.3,
    "rot13": 0.35,
    "bidi_controls": 0.4,
    "zero_width": 0.25,
    "mixed_script": 0.35,
    "spaced_letters": 0.3,
}


def find_rules(text: str, lowered: str | None = None) -> list[tuple[Rule, re.Match]]:
    """Every rule that matches, with a first match (its position gives the excerpt). `lowered`:
    `text.lower()`, when the caller has it already."""
    from .matcher import matcher

    return matcher().find(text, text.lower() if lowered is None else lowered)


def match_rules(text: str) -> list[Rule]:
    return [rule for rule, _ in find_rules(text)]


def combine(weights) -> float:
    """Noisy OR of independent pieces of evidence."""
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return 1.0 - remaining
