"""Text for the synthetic corpora: templated English sentences from built-in word lists (no /usr/share/dict
needed) and spoken questions with checkable answers (arithmetic, counting, spelling, simple facts)."""

import random

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def num2words(n):
    """English words for 0 <= n < 1_000_000, as a speaker reads them ("three hundred and four")."""
    if n < 0:
        return "minus " + num2words(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + num2words(rest))
    rest = n % 1000
    head = num2words(n // 1000) + " thousand"
    if rest == 0:
        return head
    return head + (" and " if rest < 100 else " ") + num2words(rest)


NAMES = ["Alice", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Isla", "Jack", "Kate", "Liam",
         "Maya", "Noah", "Olivia", "Peter", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wendy", "Yusuf",
         "Zoe", "Oscar", "Nora", "Leo", "Ivy", "Hugo"]
NOUNS = [("book", "books"), ("cup", "cups"), ("garden", "gardens"), ("letter", "letters"), ("window", "windows"),
         ("bicycle", "bicycles"), ("apple", "apples"), ("river", "rivers"), ("train", "trains"),
         ("candle", "candles"), ("basket", "baskets"), ("ladder", "ladders"), ("jacket", "jackets"),
         ("kettle", "kettles"), ("pencil", "pencils"), ("bridge", "bridges"), ("chair", "chairs"),
         ("map", "maps"), ("clock", "clocks"), ("boat", "boats"), ("painting", "paintings"), ("key", "keys"),
         ("shell", "shells"), ("parcel", "parcels"), ("lamp", "lamps"), ("radio", "radios"),
         ("notebook", "notebooks"), ("tomato", "tomatoes"), ("umbrella", "umbrellas"), ("violin", "violins"),
         ("wallet", "wallets"), ("blanket", "blankets"), ("feather", "feathers"), ("hammer", "hammers"),
         ("mirror", "mirrors"), ("onion", "onions"), ("pillow", "pillows"), ("rocket", "rockets")]
ADJS = ["old", "new", "red", "blue", "green", "small", "large", "quiet", "noisy", "bright", "dark", "heavy",
        "light", "warm", "cold", "shiny", "broken", "careful", "strange", "lovely", "wooden", "golden",
        "muddy", "gentle", "tired", "happy", "curious", "empty", "crowded", "tiny", "famous", "simple"]
VERBS = [("carry", "carried"), ("paint", "painted"), ("find", "found"), ("clean", "cleaned"),
         ("open", "opened"), ("fix", "fixed"), ("borrow", "borrowed"), ("sell", "sold"), ("buy", "bought"),
         ("move", "moved"), ("drop", "dropped"), ("hide", "hid"), ("wash", "washed"), ("build", "built"),
         ("count", "counted"), ("pack", "packed"), ("check", "checked"), ("lift", "lifted"),
         ("watch", "watched"), ("draw", "drew")]
PLACES = ["kitchen", "station", "library", "market", "harbour", "office", "school", "garage", "museum",
          "bakery", "hospital", "park", "village", "theatre", "beach", "forest", "hotel", "farm", "bank",
          "airport", "cafe", "stadium"]
TIMES = ["this morning", "yesterday", "last night", "on Monday", "on Tuesday", "on Wednesday", "on Thursday",
         "on Friday", "at the weekend", "after lunch", "before dinner", "in the spring", "in the autumn",
         "every evening", "an hour ago", "next week", "tomorrow", "at noon", "in December", "in June"]
ADVERBS = ["slowly", "quickly", "carefully", "quietly", "happily", "suddenly", "gently", "proudly", "twice",
           "again"]

TEMPLATES = [
    "{name} {verbp} the {adj} {noun} in the {place} {time}.",
    "Did you see the {adj} {noun} near the {place}?",
    "Please bring {num} {nouns} to the {place} {time}.",
    "The {noun} was {adj} and {adj2} {time}.",
    "I think {name} will {verb} the {noun} {time}.",
    "We counted {num} {nouns} at the {place} {time}.",
    "{name} and {name2} {verbp} {num} {adj} {nouns}.",
    "Why is the {noun} in the {place} so {adj}?",
    "There are {num} {adj} {nouns} behind the {place}.",
    "{name} {adv} {verbp} a {adj} {noun} for {name2}.",
    "Could you {verb} the {noun} before {name} arrives?",
    "My {adj} {noun} is still at the {place}.",
    "{time_cap}, {name} {verbp} the {noun} {adv}.",
    "Nobody wanted to {verb} the {adj} {noun}.",
    "The {place} opens at {hour} o'clock {time}.",
    "{name} said that the {nouns} were {adj}.",
    "How many {nouns} did {name} {verb} {time}?",
    "Put the {adj} {noun} next to the {noun2}, please.",
]


def sentence(rng: random.Random) -> str:
    """One random sentence; numbers are written as words so the text is exactly what is spoken."""
    noun, nouns = rng.choice(NOUNS)
    verb, verbp = rng.choice(VERBS)
    time = rng.choice(TIMES)
    fields = dict(name=rng.choice(NAMES), name2=rng.choice(NAMES), noun=noun, nouns=nouns,
                  noun2=rng.choice(NOUNS)[0], adj=rng.choice(ADJS), adj2=rng.choice(ADJS), verb=verb,
                  verbp=verbp, place=rng.choice(PLACES), time=time, time_cap=time[0].upper() + time[1:],
                  adv=rng.choice(ADVERBS), num=num2words(rng.randint(2, 99)), hour=num2words(rng.randint(1, 12)))
    s = rng.choice(TEMPLATES).format(**fields)
    return s[0].upper() + s[1:]


def slot_words():
    """Every word a slot of the templates can hold, sorted."""
    words = set(NAMES) | set(ADJS) | set(PLACES) | set(ADVERBS) | set(ONES) | {t for t in TENS if t}
    for pair in NOUNS + VERBS:
        words |= set(pair)
    return sorted(words)


# ---- spoken questions with checkable answers -----------------------------------------------------------------
QA_SYSTEM = "You are a helpful voice assistant. Answer briefly."  # the system turn of every QA conversation
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Germany", "Berlin"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
            ("Peru", "Lima"), ("Norway", "Oslo"), ("Greece", "Athens"), ("Portugal", "Lisbon"),
            ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Sweden", "Stockholm")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
OPPOSITES = [("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("day", "night"),
             ("open", "closed"), ("early", "late"), ("full", "empty"), ("light", "dark"), ("happy", "sad")]
COLOURS = [("grass", "green"), ("snow", "white"), ("the sky on a clear day", "blue"), ("a ripe banana", "yellow"),
           ("coal", "black"), ("a ripe tomato", "red")]
SPELL_WORDS = ["cat", "dog", "sun", "tree", "book", "fish", "milk", "rain", "bird", "star", "cake", "ship",
               "lamp", "frog", "door", "hand", "moon", "road", "salt", "wind"]
COUNT_WORDS = SPELL_WORDS + ["garden", "window", "pencil", "basket", "rocket", "violin", "kitchen", "harbour"]


def question(rng: random.Random):
    """(kind, question, answer sentence, short checkable answer)."""
    kind = rng.choice(["arithmetic", "arithmetic", "counting", "spelling", "fact"])
    if kind == "arithmetic":
        op = rng.choice(["plus", "minus", "times"])
        a, b = rng.randint(0, 20), rng.randint(0, 12)
        if op == "minus" and b > a:
            a, b = b, a
        r = a + b if op == "plus" else a - b if op == "minus" else a * b
        q = f"What is {num2words(a)} {op} {num2words(b)}?"
        return kind, q, f"{num2words(a).capitalize()} {op} {num2words(b)} is {num2words(r)}.", str(r)
    if kind == "counting":
        w = rng.choice(COUNT_WORDS)
        if rng.random() < 0.5:
            n = len(w)
            return kind, f"How many letters are in the word {w}?", f"The word {w} has {num2words(n)} letters.", str(n)
        k = rng.randint(2, 6)
        items = [rng.choice(NOUNS)[0] for _ in range(k)]
        q = "How many things do I name: " + ", ".join(items) + "?"
        return kind, q, f"You named {num2words(k)} things.", str(k)
    if kind == "spelling":
        w = rng.choice(SPELL_WORDS)
        letters = ", ".join(c.upper() for c in w)
        return kind, f"How do you spell the word {w}?", f"{w.capitalize()} is spelled {letters}.", w.upper()
    sub = rng.choice(["capital", "day", "month", "opposite", "colour"])
    if sub == "capital":
        c, cap = rng.choice(CAPITALS)
        return kind, f"What is the capital of {c}?", f"The capital of {c} is {cap}.", cap
    if sub == "day":
        i = rng.randrange(7)
        return kind, f"What day comes after {DAYS[i]}?", f"After {DAYS[i]} comes {DAYS[(i + 1) % 7]}.", DAYS[(i + 1) % 7]
    if sub == "month":
        i = rng.randrange(12)
        return (kind, f"Which month comes after {MONTHS[i]}?", f"{MONTHS[(i + 1) % 12]} comes after {MONTHS[i]}.",
                MONTHS[(i + 1) % 12])
    if sub == "opposite":
        a, b = rng.choice(OPPOSITES)
        if rng.random() < 0.5:
            a, b = b, a
        return kind, f"What is the opposite of {a}?", f"The opposite of {a} is {b}.", b
    thing, colour = rng.choice(COLOURS)
    return kind, f"What colour is {thing}?", f"{thing[0].upper() + thing[1:]} is {colour}.", colour


BACKCHANNELS = ["uh-huh", "yeah", "right", "mm-hmm", "okay", "I see", "sure"]
