"""A seeded procedural generator of short, simple stories and instruction answers (TinyStories-style).

Characters, places, problems, helpers, events and endings are drawn at random and told
in plain past-tense English; stories run 40-150 words.  ``instruction`` answers short
requests ("Write a short story about a dragon.", "Describe a forest.", "Write a poem
about the sea.", "Give me three tips for sleeping well.") in the same simple style.
"""
from __future__ import annotations

import random

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sam", "Anna", "Max", "Lucy", "Leo", "Emma", "Jack", "Rosa", "Finn",
         "Nora", "Omar", "Ivy", "Hugo", "Zoe", "Eli", "Maya", "Oscar", "Ruby", "Theo", "Ella", "Kai", "Lena",
         "Pip", "Bella", "Milo", "Sara", "Ada", "Noah", "Grace", "Felix", "Luna", "Ravi", "Yuki", "Tara"]
# (noun, gender) ; gender decides the pronoun
KINDS = [("girl", "f"), ("boy", "m"), ("little girl", "f"), ("little boy", "m"), ("old man", "m"),
         ("old woman", "f"), ("fox", "m"), ("rabbit", "f"), ("bear", "m"), ("cat", "f"), ("dog", "m"),
         ("mouse", "f"), ("dragon", "m"), ("robot", "n"), ("princess", "f"), ("king", "m"), ("queen", "f"),
         ("knight", "m"), ("farmer", "m"), ("fisherman", "m"), ("owl", "f"), ("duck", "f"), ("frog", "m"),
         ("bird", "f"), ("turtle", "m"), ("squirrel", "f"), ("wizard", "m"), ("witch", "f"), ("baker", "f"),
         ("sailor", "m"), ("lion", "m"), ("elephant", "f"), ("pirate", "m"), ("giant", "m"), ("teacher", "f"),
         ("puppy", "m"), ("kitten", "f"), ("horse", "f"), ("wolf", "m"), ("ant", "f"), ("bee", "f"),
         ("penguin", "m"), ("monkey", "m"), ("unicorn", "f"), ("mermaid", "f"), ("shepherd", "m"), ("doctor", "f")]
ADJ = ["little", "small", "brave", "shy", "happy", "curious", "kind", "clever", "sleepy", "tiny", "big", "young",
       "old", "silly", "gentle", "quiet", "busy", "lonely", "friendly", "proud", "funny", "grumpy"]
PLACES = ["a small village", "a big forest", "a quiet town", "a castle on a hill", "a farm near the river",
          "a house by the sea", "a busy city", "a little cottage in the woods", "a garden full of flowers",
          "the mountains", "a sunny island", "a cold land of snow", "a tall tower", "an old library",
          "a green valley", "a school by the park", "a ship on the sea", "a cave under the hill", "the desert",
          "a tree at the edge of the meadow", "a bakery on a narrow street", "a pond in the park"]
TIMES = ["Once upon a time", "One day", "Long ago", "One sunny morning", "One cold winter night", "Last summer",
         "Every morning", "One rainy afternoon", "A long time ago", "Early one spring morning", "One evening"]
WEATHER = ["The sun was warm and bright.", "The wind was blowing hard.", "It was raining softly.",
           "Snow covered the ground.", "The sky was grey and dark.", "Birds sang in the trees.",
           "The stars were shining.", "Leaves fell from the trees."]
OBJECTS = ["a red ball", "a golden key", "an old map", "a shiny stone", "a blue hat", "a little boat", "a kite",
           "a magic book", "a wooden box", "a silver bell", "a lost shoe", "a big apple", "a toy car",
           "a lantern", "a warm blanket", "a feather", "a seed", "a letter", "a music box", "a treasure chest"]
WANTS = [("wanted to see the sea", "see the sea"), ("wanted to fly like a bird", "fly"),
         ("wanted to find a friend", "find a friend"), ("wanted to climb the highest hill", "climb the hill"),
         ("wanted to bake a big cake", "bake a cake"), ("wanted to win the race", "win the race"),
         ("wanted to learn to swim", "swim"), ("wanted to find the end of the rainbow", "find the rainbow"),
         ("wanted to sing in the show", "sing in the show"), ("wanted to build a house", "build a house"),
         ("wanted to read every book in the library", "read the books"),
         ("wanted to grow the biggest flower", "grow a flower"), ("wanted to visit the moon", "visit the moon")]
PROBLEMS = ["{he} lost {his} {obj_n}.", "{he} was afraid of the dark.", "a big storm came.",
            "the bridge over the river was broken.", "{he} could not find the way home.",
            "{his} friend was sad and would not play.", "the food was all gone.", "{he} got stuck in the mud.",
            "a tall wall stood in the way.", "{he} was too small to reach the top.", "{he} fell and hurt {his} leg.",
            "the river was too wide to cross.", "nobody listened to {him}.", "{he} forgot the words of the song."]
FEELINGS = ["sad", "scared", "worried", "angry", "tired", "lonely", "confused", "upset"]
HAPPY = ["happy", "glad", "proud", "excited", "thankful", "surprised", "calm"]
HELP_ACTS = ["showed {him} a secret path", "gave {him} {obj}", "told {him} not to give up",
             "held {his} hand", "sang a song to make {him} brave", "built a little bridge with sticks",
             "shared some bread and honey", "carried {him} on {hp} back", "lit a lantern in the dark",
             "helped {him} look under every rock", "taught {him} a clever trick"]
LESSONS = ["It is good to ask for help.", "Friends make hard things easy.", "Being kind is the best magic.",
           "Never give up, even when things are hard.", "Sharing makes everyone happy.",
           "Being brave does not mean you are not afraid.", "Small friends can do big things.",
           "Patience is a gift.", "Home is where your friends are.", "It is fun to try new things."]
ENDINGS = ["From that day on, {name} and {friend} were best friends.", "{name} went home with a big smile.",
           "That night, {name} slept well and dreamed of new adventures.",
           "Everyone clapped and cheered for {name}.", "{name} never forgot that day.",
           "And they all lived happily ever after.", "Then {he} went home, tired but happy.",
           "The next day, {name} told everyone the story.", "It was the best day of {his} life."]


class Char:
    def __init__(self, rng: random.Random, kind: tuple[str, str] | None = None):
        self.kind, g = kind or rng.choice(KINDS)
        self.adj = rng.choice(ADJ)
        self.name = rng.choice(NAMES)
        self.he, self.him, self.his = {"m": ("he", "him", "his"), "f": ("she", "her", "her"),
                                       "n": ("it", "it", "its")}[g]

    def intro(self, rng):
        k = self.kind if self.kind.startswith(("little ", "old ")) else f"{self.adj} {self.kind}"
        a = "an" if k[0] in "aeiou" else "a"
        return rng.choice([f"{a} {k} named {self.name}", f"{a} {k} called {self.name}", f"{a} {k}",
                           f"{a} {k} named {self.name}"])


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def story(rng: random.Random, about: tuple[str, str] | None = None, place: str | None = None) -> str:
    """One story of about 40-150 words."""
    c = Char(rng, about)
    f = Char(rng)
    while f.kind == c.kind:
        f = Char(rng)
    place = place or rng.choice(PLACES)
    intro = c.intro(rng)
    if not intro.endswith(c.name):
        c.name = "the " + c.kind
    name = c.name
    Name = _cap(name)
    fmt = dict(he=c.he, him=c.him, his=c.his, name=name, friend="the " + f.kind if rng.random() < 0.5 else f.name,
               hp=f.his, obj=rng.choice(OBJECTS), obj_n=rng.choice(OBJECTS).split(" ", 1)[1])
    s = []
    opening = rng.randrange(6)
    if opening >= 4:
        s.append(rng.choice(["It was a dark and stormy night.", "It was a bright summer day.", "The sun was rising.",
                             "It was the first day of spring.", "The night was cold and quiet."]))
    if opening == 0:
        s.append(f"{rng.choice(TIMES)}, there was {intro} who lived in {place}.")
    elif opening == 1:
        s.append(f"{rng.choice(TIMES)}, {intro} was walking through {place}.")
    elif opening == 2:
        s.append(f"In {place}, there lived {intro}.")
    elif opening == 3:
        s.append(f"{_cap(intro)} lived in {place}.")
    else:
        s.append(f"{_cap(intro)} walked to the {rng.choice(['river', 'market', 'park', 'sea', 'forest', 'old bridge', 'top of the hill', 'village', 'door', 'window'])}.")
    if rng.random() < 0.5:
        s.append(rng.choice(WEATHER))
    if rng.random() < 0.5:
        s.append(f"{_cap(c.he)} was very {c.adj} and liked to {rng.choice(['play', 'sing', 'run', 'read', 'dance', 'explore', 'draw', 'help others'])}.")
    want, short = rng.choice(WANTS)
    if rng.random() < 0.6:
        s.append(f"{Name} {want}.")
        s.append(f"But {rng.choice(PROBLEMS).format(**fmt)}")
    else:
        s.append(f"One day, {name} found {fmt['obj']} {rng.choice(['under a tree', 'in the grass', 'on the beach', 'near the door', 'in an old box', 'by the river'])}.")
        s.append(rng.choice([f"{_cap(c.he)} did not know what it was.", f"It was very {rng.choice(['shiny', 'old', 'strange', 'pretty', 'heavy'])}.",
                             f"\"What is this?\" {c.he} asked."]))
        short = None
    s.append(f"{Name} felt {rng.choice(FEELINGS)}.")
    if rng.random() < 0.5:
        s.append(rng.choice([f"{_cap(c.he)} sat down and started to cry.", f"\"What can I do?\" {c.he} said.",
                             f"{_cap(c.he)} tried again, but it did not work."]))
    fi = f.intro(rng)
    s.append(rng.choice([f"Then {fi} came by.", f"Just then, {fi} saw {c.him}.", f"Soon {fi} walked up to {c.him}."]))
    s.append(rng.choice([f"\"Why are you {rng.choice(FEELINGS)}?\" asked the {f.kind}.",
                         f"\"Can I help you?\" asked the {f.kind}.", f"\"Do not worry,\" said the {f.kind}."]))
    s.append(f"The {f.kind} {rng.choice(HELP_ACTS).format(**fmt)}.")
    if short:
        s.append(rng.choice([f"Together they tried again, and at last {name} could {short}.",
                             f"With the help of the {f.kind}, {name} was able to {short}."]))
    else:
        s.append(rng.choice([f"Together they opened it and found {rng.choice(OBJECTS)} inside.",
                             f"The {f.kind} said it was a magic gift that could make wishes come true.",
                             f"They took it to the {rng.choice(['king', 'teacher', 'old owl', 'baker'])}, who was very happy to have it back."]))
    s.append(f"{Name} felt {rng.choice(HAPPY)}.")
    if rng.random() < 0.5:
        s.append(f"\"Thank you,\" said {name}.")
    s.append(rng.choice(ENDINGS).format(**fmt))
    if rng.random() < 0.4:
        s.append(rng.choice(LESSONS))
    text = " ".join(s)
    return _cap(text)


# --------------------------------------------------------------------------- instructions
TOPIC_KINDS = {k: g for k, g in KINDS}
STORY_Q = ["Write a short story about {a} {k}.", "Tell me a story about {a} {k}.", "Write a story about {a} {k}.",
           "Tell a short story about {a} {k}.", "Write a children's story about {a} {k}.",
           "Can you tell me a story about {a} {k}?", "write a story about {a} {k}", "Tell me a bedtime story.",
           "Write a short story.", "Tell me a story.", "Write a story set in {p}.", "Make up a story about {a} {k}."]
DESCRIBE = {
    "the sea": "The sea is wide and blue. Waves roll onto the sand and the water sparkles in the sun. Birds fly over it, and boats sail far away.",
    "a forest": "A forest is full of tall trees. Their green leaves make cool shade, and the air smells of earth and pine. Birds sing, and small animals hide in the bushes.",
    "the moon": "The moon shines in the night sky. It is round and silver, and it looks big when it rises over the hills. Its soft light falls on the sleeping town.",
    "a city": "A city is big and busy. Cars and buses move along the streets, tall buildings reach up to the sky, and many people walk to work and to school.",
    "winter": "Winter is the cold season. Snow falls, the days are short, and lakes turn to ice. People wear warm coats and drink hot tea by the fire.",
    "summer": "Summer is the warm season. The days are long and sunny, children swim in rivers, and fruit grows sweet on the trees.",
    "a garden": "A garden is full of flowers and plants. Bees buzz from rose to rose, and the grass is soft and green. It is a quiet place to rest.",
    "a storm": "In a storm the sky turns dark. The wind blows hard, rain beats on the windows, and thunder rolls across the hills.",
    "a cat": "A cat is a small furry animal with soft paws and sharp ears. It likes to sleep in the sun, chase mice and play with string.",
    "a dog": "A dog is a friendly animal that loves to run and play. It wags its tail when it is happy and barks when someone comes to the door.",
    "the mountains": "The mountains are high and quiet. Their tops are covered in snow, and cold streams run down between the rocks into green valleys.",
    "a sunset": "At sunset the sky turns orange, pink and gold. The sun sinks slowly behind the hills, and the first stars appear.",
    "the night sky": "The night sky is dark and deep. Thousands of stars twinkle, and the moon sails slowly above the quiet world.",
    "a river": "A river flows from the hills to the sea. Its water is cool and clear, fish swim in it, and trees grow along its banks.",
    "a school": "A school is a place where children learn. They read books, write stories, count numbers and play together in the yard.",
    "a kitchen": "A kitchen is where food is made. It smells of bread and soup, pots bubble on the stove, and the table is ready for dinner.",
    "autumn": "In autumn the leaves turn red and yellow and fall from the trees. The air is cool, and farmers gather the harvest.",
    "spring": "In spring the snow melts and flowers bloom. Birds build nests, lambs play in the fields, and the days grow longer.",
    "the desert": "The desert is hot and dry. Sand stretches as far as the eye can see, and only a few tough plants and animals live there.",
    "a library": "A library is a quiet place full of books. People come to read, to learn and to borrow stories to take home.",
}
DESC_Q = ["Describe {x}.", "Describe {x} in a few sentences.", "Write a description of {x}.", "What is {x} like?",
          "describe {x}", "Write a few sentences about {x}."]
POEM_Q = ["Write a poem about {x}.", "Write a short poem about {x}.", "Write a poem.", "write a poem about {x}",
          "Compose a short poem about {x}."]
POEM_LINES = ["Soft and slow, the {x} is here,", "I see the {x}, so bright and clear,", "The {x} is calling me today,",
              "Over the hills and far away,", "The wind is singing in the trees,", "A quiet song upon the breeze,",
              "And all the world is calm and still,", "The light is golden on the hill,", "I will remember, come what may,",
              "The {x} that made my heart so gay.", "The stars will shine when day is done,",
              "And I will dream of {x} and sun.", "My heart is glad, my heart is light,", "Goodbye to day, hello to night."]
TIPS = {
    "sleeping well": ["Go to bed at the same time every night.", "Keep your room dark and quiet.",
                      "Do not drink coffee late in the day.", "Put your phone away an hour before bed.",
                      "Read a book or take a warm bath to relax."],
    "staying healthy": ["Eat fruit and vegetables every day.", "Drink plenty of water.", "Walk or play outside.",
                        "Sleep eight hours a night.", "Wash your hands often."],
    "learning a language": ["Practise a little every day.", "Read simple books and stories.",
                            "Listen to songs and films in the language.", "Speak with other people, even if you make mistakes.",
                            "Learn new words in small groups."],
    "studying": ["Find a quiet place to work.", "Study in short blocks with breaks.", "Write notes in your own words.",
                 "Test yourself instead of only reading.", "Start early and do not wait until the night before."],
    "saving money": ["Write down what you spend.", "Cook at home more often.", "Wait a day before buying something you want.",
                     "Put a little money aside every week.", "Buy only what you need."],
    "writing a story": ["Start with a character who wants something.", "Give the character a problem.",
                        "Show what the character does to solve it.", "Use simple words and short sentences.",
                        "End with a change, a lesson or a surprise."],
    "making friends": ["Smile and say hello.", "Ask people about themselves and listen.", "Join a club or a team.",
                       "Be kind and helpful.", "Keep in touch with the people you like."],
    "a picnic": ["Pack sandwiches, fruit and water.", "Bring a blanket to sit on.", "Choose a shady place in the park.",
                 "Take a ball or a game to play.", "Take your rubbish home with you."],
}
TIPS_Q = ["Give me {n} tips for {x}.", "What are some tips for {x}?", "How can I get better at {x}?",
          "List {n} tips for {x}.", "Any advice on {x}?"]
LISTS = {
    "animals": ["cat", "dog", "horse", "lion", "elephant", "rabbit", "bear", "fox", "owl", "frog", "whale", "tiger"],
    "fruits": ["apple", "banana", "orange", "pear", "grape", "cherry", "plum", "peach", "lemon", "mango"],
    "colours": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink"],
    "vegetables": ["carrot", "potato", "onion", "pea", "bean", "cabbage", "tomato", "pepper", "lettuce"],
    "birds": ["sparrow", "robin", "eagle", "owl", "duck", "swan", "crow", "parrot", "penguin"],
    "things in a kitchen": ["a pot", "a pan", "a knife", "a spoon", "a plate", "a cup", "an oven", "a kettle"],
    "musical instruments": ["piano", "violin", "guitar", "flute", "drum", "trumpet", "harp", "cello"],
}
LIST_Q = ["List {n} {x}.", "Name {n} {x}.", "Give me a list of {x}.", "What are some {x}?", "name some {x}"]
JOKES = ["Why did the cat sit on the computer? Because it wanted to keep an eye on the mouse!",
         "What do you call a sleeping dinosaur? A dino-snore!",
         "Why did the teddy bear say no to dessert? Because it was already stuffed!",
         "What do you call a fish without eyes? A fsh!",
         "Why was the math book sad? Because it had too many problems.",
         "What did the ocean say to the beach? Nothing, it just waved.",
         "Why do bees have sticky hair? Because they use honeycombs!",
         "What has keys but cannot open locks? A piano."]
NUM = {2: "two", 3: "three", 4: "four", 5: "five"}


def instruction(rng: random.Random) -> tuple[str, str]:
    """One (request, answer) pair."""
    r = rng.random()
    if r < 0.5:
        kind = rng.choice(KINDS)
        place = rng.choice(PLACES)
        q = rng.choice(STORY_Q).format(a="an" if kind[0][0] in "aeiou" else "a", k=kind[0], p=place)
        use_kind = kind if f" {kind[0]}." in q or f" {kind[0]}?" in q or q.endswith(" " + kind[0]) else None
        return q, story(rng, use_kind, place if place in q else None)
    if r < 0.62:
        x = rng.choice(list(DESCRIBE))
        return rng.choice(DESC_Q).format(x=x), DESCRIBE[x]
    if r < 0.74:
        x = rng.choice(list(DESCRIBE))
        bare = x.split(" ", 1)[1] if x.startswith(("a ", "the ")) else x
        q = rng.choice(POEM_Q).format(x=x)
        pairs = rng.sample(range(len(POEM_LINES) // 2), rng.choice([2, 2, 3, 4]))
        lines = [POEM_LINES[2 * i + j] for i in pairs for j in (0, 1)]
        return q, "\n".join(ln.format(x=bare) for ln in lines)
    if r < 0.84:
        x = rng.choice(list(TIPS))
        n = rng.choice([3, 4, 5])
        tips = rng.sample(TIPS[x], n)
        q = rng.choice(TIPS_Q).format(n=NUM[n], x=x)
        intro = rng.choice([f"Here are {NUM[n]} tips for {x}:", f"Some tips for {x}:", ""])
        body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(tips))
        return q, (intro + "\n" + body).strip()
    if r < 0.93:
        x = rng.choice(list(LISTS))
        n = rng.choice([3, 4, 5])
        items = rng.sample(LISTS[x], n)
        q = rng.choice(LIST_Q).format(n=NUM[n], x=x)
        return q, rng.choice([f"Here are {NUM[n]} {x}:\n" + "\n".join(f"- {i}" for i in items),
                              f"Some {x} are " + ", ".join(items[:-1]) + f" and {items[-1]}."])
    q = rng.choice(["Tell me a joke.", "Tell me something funny.", "Do you know a joke?", "Make me laugh."])
    return q, rng.choice(JOKES)


if __name__ == "__main__":
    g = random.Random(0)
    for _ in range(3):
        t = story(g)
        print(len(t.split()), t, "\n")
    for _ in range(6):
        print(instruction(g), "\n")
