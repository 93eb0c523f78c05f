"""Moderation categories (the MLCommons hazard taxonomy plus harassment) and the fast rule layer.

A rule is a regular expression for a clear request or statement of intent, not a keyword: the
object or the context must be there too ("how do I kill my neighbour", not "kill"), so "kill a
Python process", "shoot a portrait", "the history of the atomic bomb" and "a killer feature" pass.
Rules are cheap (microseconds per short text) and run on streamed output chunks; the semantic layer
(semantic.py) catches what is phrased differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES: dict[str, str] = {
    "violent_crimes": "helps plan or commit violence against people or animals: murder, assault, kidnapping, terrorism",
    "non_violent_crimes": "helps commit fraud, scams, theft, hacking, drug trafficking or other non-violent crimes",
    "sex_related_crimes": "sexual assault, trafficking, non-consensual intimate images, sextortion, voyeurism",
    "child_sexual_exploitation": "sexual content involving minors, grooming, child sexual abuse material",
    "indiscriminate_weapons": "chemical, biological, radiological or nuclear weapons and high-yield explosives",
    "suicide_self_harm": "suicide, self-harm or disordered eating: intent, methods, encouragement",
    "hate": "demeans or dehumanises people for a protected characteristic (race, religion, gender, ...)",
    "sexual_content": "explicit sexual content about adults",
    "privacy": "exposes or tracks a private person: addresses, identifiers, spying, doxxing",
    "specialized_advice": "unqualified medical, legal or financial advice that replaces a professional where harm is likely",
    "defamation": "false, damaging statements presented as fact about real people or organisations",
    "elections": "false information about voting (when, where, how, who may vote) or election interference",
    "intellectual_property": "piracy, cracking, counterfeits, reproducing copyrighted works wholesale",
    "harassment": "insults, threats or intimidation aimed at a person; bullying and pile-ons",
}


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: re.Pattern[str]
    reason: str  # what the text does, e.g. "asks how to make a weapon"
    action: str = "block"  # at the standard level; "warn" rules become "block" at strict
    unless: re.Pattern[str] | None = None  # context that makes the match benign (reporting, prevention, ...)
    # Lower-case substrings (words separated by one space), one of which every match contains: a
    # cheap pre-filter (``in`` on the lowered text) so most rules skip most texts without running
    # their regular expression. tests/test_moderation.py checks that it changes no result.
    needles: tuple[str, ...] = ()


# Building blocks. Requests: "how do/can/would I", "ways to", "help me", "tell me how to", "give me steps".
_ASK = (r"(?:how\s+(?:do|can|could|would|should|to|does\s+one)\b(?:\s+\w+){0,2}?|ways?\s+to|steps?\s+to|"
        r"instructions?\s+(?:for|to|on)|guide\s+to|teach\s+me(?:\s+how)?(?:\s+to)?|help\s+me|tell\s+me\s+how|"
        r"show\s+me\s+how|explain\s+how|recipe\s+(?:for|to)|best\s+way\s+to|easiest\s+way\s+to|i\s+want\s+to|"
        r"i(?:'m|\s+am)\s+(?:going|planning)\s+to|i(?:'ll|\s+will)|let'?s)")
_MAKE = r"(?:make|build|assemble|construct|synthesi[sz]e|produce|create|cook|brew|manufacture|culture|weaponi[sz]e|get|obtain|buy)"
_WEAPON = (r"(?:(?:pipe|nail|car|fertili[sz]er|pressure[- ]cooker|dirty|letter|atomic|nuclear)\s+bombs?|bombs?|i\.?e\.?d\.?s?|"
           r"explosives?|sarin|tabun|soman|vx(?:\s+nerve\s+agent)?|nerve\s+(?:agent|gas)|ricin|anthrax|botulinum(?:\s+toxin)?|"
           r"mustard\s+gas|napalm|tatp|thermite\s+bomb|chemical\s+weapons?|bio-?weapons?|biological\s+weapons?|"
           r"nukes?|nuclear\s+weapons?|suicide\s+vests?|grenades?|molotov(?:\s+cocktails?)?|poison\s+gas|toxic\s+gas)")
# People as the object of a violent verb (so "kill a process", "shoot a photo" never match).
_PERSON = (r"(?:(?:my|his|her|their|our|your|a|an|the|this|that|some)\s+)?(?:\w+\s+)?"
           r"(?:wife|husband|girlfriend|boyfriend|partner|ex|neighbou?r|boss|manager|coworker|co-worker|colleague|"
           r"teacher|classmate|roommate|father|mother|dad|mom|mum|brother|sister|son|daughter|stepfather|stepmother|"
           r"parents?|family|friend|child|children|kid|kids|baby|man|woman|men|women|person|people|guy|girl|boy|"
           r"cop|police\s+officer|officer|president|politician|senator|someone|somebody|him|her|them|everyone|everybody)")
_VIOLENT = r"(?:kill|murder|stab|strangle|choke|poison|shoot|behead|kidnap|abduct|torture|beat\s+up|assassinate|maim)"
_MINOR = (r"(?:child|children|kid|kids|minor|minors|underage|under-age|pre-?teens?|little\s+(?:girl|boy)s?|"
          r"(?:[1-9]|1[0-7]|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
          r"fifteen|sixteen|seventeen)[- ]years?[- ]olds?|schoolgirls?|schoolboys?|toddlers?|"
          r"(?:middle|elementary|primary)\s+school\s+(?:girl|boy|student|pupil)s?|"
          r"aged\s+(?:[1-9]|1[0-7])\b|(?:[1-9]|1[0-7])\s*(?:yo|y/o|yrs?\s+old)\b)")
_SEXUAL = r"(?:sexual(?:ly)?|sexy|erotic|nude|nudes|naked|explicit|porn\w*|sex\s+(?:scene|story|stories|act)|lewd|sext\w*)"
_GROUP = (r"(?:jews|jewish\s+people|muslims|blacks|black\s+people|africans|arabs|asians|chinese\s+people|mexicans|"
          r"immigrants|refugees|gays|gay\s+people|lesbians|trans\s+people|transgender\s+people|women|hindus|"
          r"christians|roma|gypsies|indians|whites|white\s+people|disabled\s+people)")
_DEHUMANISE = (r"(?:vermin|animals|parasites|subhuman|sub-human|cockroaches|rats|savages|a\s+disease|"
               r"an?\s+plague|not\s+(?:even\s+)?human|inferior\s+races?|filth|scum)")
# A deliberately short list of unambiguous slurs (a quoted slur is possible, so they warn at standard).
_SLURS = r"(?:nigg(?:er|a)s?|kikes?|faggots?|spics?|wetbacks?|ragheads?|towelheads?|gooks?|sand\s*niggers?)"


# Protective or educational context: the rule stays silent and the semantic layer judges.
_PROTECTIVE = re.compile(r"\b(?:report\w*|prevent\w*|protect\w*|warning\s+signs?|signs\s+of|recogni[sz]e|survivors?|"
                         r"therap\w*|awareness|education|educate|detect\w*|statistics|laws?|legal|hotline|talk\s+to|"
                         r"explain|puberty|doctor|pediatrician|paediatrician|history\s+of|novel|lolita)\b", re.IGNORECASE)

_HISTORICAL = re.compile(r"\b(?:history|historically|manhattan\s+project|treaty|treaties|convention|defuse|disarm|"
                         r"bomb\s+squad|in\s+(?:19|18)\d\d|during\s+(?:the\s+)?(?:war|world\s+war))\b", re.IGNORECASE)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


RULES: tuple[Rule, ...] = (
    Rule("indiscriminate_weapons", _rx(rf"\b{_ASK}\s+(?:\w+\s+){{0,3}}?{_MAKE}\s+(?:\w+\s+){{0,3}}?{_WEAPON}\b"),
         "asks how to make a weapon", needles=("bomb", "explosive", "ied", "i.e.d", "sarin", "tabun", "soman", "vx", "nerve", "ricin", "anthrax", "botulinum", "mustard", "napalm", "tatp", "thermite", "weapon", "nuke", "vest", "grenade", "molotov", "gas"), unless=_HISTORICAL),
    Rule("indiscriminate_weapons", _rx(r"\b(?:release|spread|disperse)\s+(?:\w+\s+){0,2}?(?:sarin|anthrax|ricin|nerve\s+agent|"
                                       r"poison\s+gas|bio-?weapon|virus|toxin)\s+(?:in|at|on|into)\s+(?:a|the)\s+"
                                       r"(?:crowd|subway|metro|mall|stadium|airport|school|water\s+supply|city)"),
         "plans a mass-casualty attack", needles=("release", "spread", "disperse")),
    Rule("violent_crimes", _rx(rf"\b{_ASK}\s+(?:\w+\s+){{0,2}}?{_VIOLENT}\s+{_PERSON}\b(?!\s+(?:process|thread|job|task|"
                               rf"session|server|container|app|program|script|character|npc|boss\s+fight|photo|portrait|scene))"),
         "asks how to hurt or kill a person", needles=("kill", "murder", "stab", "strangl", "chok", "poison", "shoot", "behead", "kidnap", "abduct", "tortur", "beat", "assassinat", "maim")),
    Rule("violent_crimes", _rx(r"\b(?:get\s+rid\s+of|dispose\s+of|hide|dissolve|bury)\s+(?:a|the|his|her)\s+(?:dead\s+)?body\b"
                               r"(?=.{0,60}\b(?:police|cops|never\s+find|without|caught|evidence)\b)"),
         "asks how to hide a killing", needles=("body",)),
    Rule("violent_crimes", _rx(r"\b(?:hire|find|pay)\s+(?:a\s+)?(?:hit\s*man|hitman|contract\s+killer|assassin)\s+(?:to|for)\b"),
         "asks to hire a killer", needles=("hit", "contract killer", "assassin")),
    Rule("violent_crimes", _rx(r"\b(?:mass\s+shooting|shoot\s+up\s+(?:the|my|a)\s+(?:school|office|church|mosque|synagogue|mall)|"
                               r"terrorist\s+attack\s+on)\b(?=.{0,40}\b(?:plan|help|how|organi[sz]e|carry\s+out)\b)|"
                               r"\b(?:plan|organi[sz]e|carry\s+out|help\s+me\s+(?:with|plan))\s+(?:a\s+)?(?:mass\s+shooting|"
                               r"terrorist\s+attack|bombing)\b"),
         "plans a mass attack", needles=("shoot", "terrorist", "bombing")),
    Rule("child_sexual_exploitation", _rx(rf"\b{_SEXUAL}\b.{{0,60}}?\b{_MINOR}\b|\b{_MINOR}\b.{{0,40}}?\b{_SEXUAL}\b"),
         "sexual content involving a minor", needles=("sex", "erotic", "nude", "naked", "explicit", "porn", "lewd"), unless=_PROTECTIVE),
    Rule("child_sexual_exploitation", _rx(r"\b(?:child|kiddie|kiddy|underage|preteen|pre-teen)\s+(?:porn\w*|sex\s+videos?|nudes?)\b|\bcsam\b"
                                          r"(?=.{0,40}\b(?:find|get|download|share|trade|buy|send|where|link)\b)|"
                                          r"\b(?:find|get|download|share|trade|buy|send|where\s+(?:can|do)\s+(?:i|people))\b.{0,40}\bcsam\b"),
         "asks for child sexual abuse material", needles=("porn", "sex", "nude", "csam")),
    Rule("child_sexual_exploitation", _rx(rf"\b(?:groom|seduce|molest)\s+(?:a|the|my|this|his|her|their)?\s*(?:\w+\s+)?{_MINOR}"),
         "describes grooming or abusing a child", needles=("groom", "seduce", "molest")),
    Rule("sex_related_crimes", _rx(r"\bdate[- ]rape\s+drugs?\b|\b(?:drug|spike)\s+(?:her|his|a\s+(?:woman|girl|man)'?s?|"
                                   r"someone'?s?|the\s+girl'?s?)\s+drinks?\b|\brevenge\s+porn\b(?=.{0,40}\b(?:post|make|share|upload)\b)"),
         "describes drugging or sexually exploiting someone", needles=("rape", "drug", "spike", "porn")),
    Rule("sex_related_crimes", _rx(r"\b(?:secretly|hidden\s+cameras?|spy\s*cams?|without\s+(?:her|his|them|their)\s+knowing)\b.{0,50}"
                                   r"\b(?:film|record|photograph|camera)\w*\b.{0,40}\b(?:women|girls|changing\s+rooms?|locker\s+rooms?|"
                                   r"bathrooms?|showers?|undress\w*|guests?)\b"),
         "describes voyeurism", needles=("film", "record", "photograph", "camera")),
    Rule("suicide_self_harm", _rx(r"\b(?:i\s+(?:want|need|am\s+going|'m\s+going|plan|am\s+planning|'m\s+planning|intend|"
                                  r"have\s+decided)\s+to|how\s+(?:do|can|should)\s+i|help\s+me)\s+(?:\w+\s+){0,2}?"
                                  r"(?:kill\s+myself|end\s+(?:my|it\s+all|my\s+own)\s*life|end\s+it\s+all|commit\s+suicide|"
                                  r"hang\s+myself|cut\s+myself|overdose|hurt\s+myself|die\b)"),
         "states an intent of suicide or self-harm", needles=("myself", "life", "end it", "suicide", "overdose", "die")),
    Rule("suicide_self_harm", _rx(r"\b(?:painless|quickest|easiest|surest|most\s+reliable|best)\s+(?:way|method)s?\s+(?:to|of)\s+"
                                  r"(?:die|suicide|kill\s+myself|end\s+my\s+life|commit\s+suicide)\b|"
                                  r"\bwrite\s+(?:me\s+)?(?:a|my)\s+suicide\s+note\b|\blethal\s+dose\s+of\b.{0,40}\b(?:me|my|i)\b"),
         "asks for a suicide method", needles=("way", "method", "suicide", "lethal dose")),
    Rule("suicide_self_harm", _rx(r"\b(?:cut|slit|slash)\s+(?:open\s+)?my\s+(?:wrists?|veins?|throat)\b|"
                                  r"\bhow\s+many\s+(?:\w+\s+){0,2}?(?:pills|tablets|capsules)\b.{0,50}\b(?:enough|to\s+die|"
                                  r"kill\s+me|not\s+wake\s+up|never\s+wake\s+up|lethal|fatal)\b|"
                                  r"\b(?:swallow|take)\s+(?:them|the\s+pills|all\s+(?:my|the|of\s+my)\s+pills)\s+all\b|"
                                  r"\bready\s+to\s+(?:die|end\s+(?:it|my\s+life))\b"),
         "describes a suicide method or plan", needles=("wrist", "vein", "throat", "pills", "tablets", "capsules", "swallow", "take them", "ready to")),
    Rule("hate", _rx(rf"\b{_GROUP}\s+(?:are|r|is)\s+(?:all\s+|just\s+|nothing\s+but\s+)?{_DEHUMANISE}\b"),
         "dehumanises a group", needles=("vermin", "animal", "parasite", "subhuman", "sub-human", "cockroach", "rats", "savage", "disease", "plague", "human", "inferior", "filth", "scum")),
    Rule("hate", _rx(rf"\b(?:exterminate|gas|kill\s+all|wipe\s+out|eradicate|get\s+rid\s+of)\s+(?:the|all)?\s*{_GROUP}\b"),
         "calls for violence against a group", needles=("exterminat", "gas", "kill all", "wipe out", "eradicat", "get rid of")),
    Rule("hate", _rx(r"\b(?:jews|jewish\s+people|the\s+jews)\b.{0,30}\b(?:control|run|own)\s+(?:the\s+)?(?:banks|media|"
                     r"world|government|money)\b"),
         "repeats an antisemitic conspiracy claim", needles=("jew",), unless=re.compile(
             r"\b(?:myth|conspiracy\s+theor\w*|origins?|antisemit\w*|debunk\w*|why\s+do\s+people\s+believe|"
             r"propaganda|history)\b", re.IGNORECASE)),
    Rule("hate", _rx(rf"\b{_SLURS}\b"), "uses a slur", needles=("nigg", "kike", "fagg", "spic", "wetback", "raghead", "towelhead", "gook"), action="warn"),
    Rule("sexual_content", _rx(r"\b(?:write|describe|generate|create|tell\s+me|give\s+me)\b.{0,40}\b(?:explicit|graphic|hardcore|"
                               r"nsfw|pornographic|x-rated|uncensored|smutty|raunchy)\b.{0,30}\b(?:sex|sexual|erotic|porn\w*|"
                               r"intercourse|scene|story)\b"),
         "asks for explicit sexual content", needles=("explicit", "graphic", "hardcore", "nsfw", "pornographic", "x-rated", "uncensored", "smutty", "raunchy"),
         unless=re.compile(r"\b(?:non-?|not\s+|without\s+(?:being\s+)?|nothing\s+)explicit\b|\bfades?\s+to\s+black\b", re.IGNORECASE)),
    Rule("privacy", _rx(r"\bdoxx?(?:ing)?\s+(?:him|her|them|this|that|the|my)\b|"
                        r"\b(?:track|spy\s+on|read|monitor|hack)\s+(?:my\s+)?(?:\w+\s+){0,2}?(?:wife|husband|girlfriend|boyfriend|"
                        r"partner|ex|coworker|employee|neighbou?r)'?s?\s+(?:\w+\s+){0,2}?(?:phone|messages|texts|location|"
                        r"whatsapp|email|chats|calls)\b.{0,30}\bwithout\s+(?:her|him|them|their)\b"),
         "asks to expose or spy on a person", needles=("dox", "without")),
    Rule("non_violent_crimes", _rx(rf"\b{_ASK}\s+(?:\w+\s+){{0,2}}?(?:cook|make|produce|synthesi[sz]e)\s+(?:\w+\s+)?"
                                   r"(?:meth|methamphetamine|crystal\s+meth|crack(?:\s+cocaine)?|heroin|fentanyl)\b"),
         "asks how to make illegal drugs", needles=("meth", "crack", "heroin", "fentanyl")),
    Rule("non_violent_crimes", _rx(r"\b(?:write|code|create|build|make|develop)\s+(?:me\s+)?(?:a|some)?\s*(?:working\s+)?"
                                   r"(?:ransomware|keylogger|botnet|credential\s+stealer|password\s+stealer|info-?stealer)\b"),
         "asks for malware", needles=("ransomware", "keylogger", "botnet", "stealer")),
    Rule("intellectual_property", _rx(r"\b(?:give\s+me|send\s+me|download|where\s+(?:can|do)\s+i\s+(?:get|download|find)|"
                                      r"generate|make)\b.{0,30}\b(?:cracked|pirated|keygen|warez|serial\s+key|license\s+key|"
                                      r"activation\s+key)\b"),
         "asks for pirated or cracked software", needles=("crack", "pirat", "keygen", "warez", "key"), action="warn"),
    Rule("harassment", _rx(r"\b(?:you\s+should|go|just\s+go)\s+kill\s+yourself\b|\bkys\b|"
                           r"\bi\s+know\s+where\s+you\s+live\b|\byou(?:'d|\s+had)\s+better\s+watch\s+(?:out|your\s+back)\b"),
         "threatens or tells someone to kill themselves", needles=("kill yourself", "kys", "where you live", "watch")),
)


def rule_matches(text: str) -> list[tuple[Rule, re.Match[str]]]:
    """Every rule that matches ``text``, with its first match (one per rule)."""
    out = []
    lowered = " ".join(text.lower().split())  # the patterns match any whitespace with \s+
    for rule in RULES:
        if rule.needles and not any(n in lowered for n in rule.needles):
            continue
        m = rule.pattern.search(text)
        if m and not (rule.unless and rule.unless.search(text)):
            out.append((rule, m))
    return out
