"""Labeling functions for the embedded demo dataset (sports / technology / food / weather).

Deliberately simple keyword and regex heuristics: each is right most of the time when it
fires, covers only a slice of the data, and some fire on the wrong class ("game-day chili",
"cloud backup", "hot new gadget"). Substring matching is on purpose: "rain" also hits
"trained", "match" also hits "matcha".
"""

import re

from labelers import labeling_function


def _has(x, words):
    text = x.text.lower()
    return any(w in text for w in words)


# --- sports -----------------------------------------------------------------------------

@labeling_function()
def lf_sports_match_terms(x):
    return "sports" if _has(x, ("goal", "match", "coach", "score", "referee", "tournament", "penalty", "stadium", "fans", "medal", "race")) else None


@labeling_function()
def lf_sports_competition(x):
    return "sports" if re.search(r"\b(teams?|league|championship|playoffs?|football|season|players?|won|win|final|club)\b",
                                 x.text, re.I) else None


@labeling_function()
def lf_sports_game(x):
    # noisy: video games and game-day food also say "game"
    return "sports" if re.search(r"\bgames?\b", x.text, re.I) else None


# --- technology -------------------------------------------------------------------------

@labeling_function()
def lf_tech_devices(x):
    return "technology" if _has(x, ("phone", "laptop", "software", "computer", "keyboard", "tablet", "screen", "monitor", "earbuds", "device", "startup")) else None


@labeling_function()
def lf_tech_app_or_version(x):
    return "technology" if re.search(r"\bapps?\b|\bv?\d+\.\d+(\.\d+)*\b", x.text, re.I) else None


@labeling_function()
def lf_tech_maintenance(x):
    # noisy: "injury update", "storm update"
    return "technology" if _has(x, ("update", "battery", "wi-fi", "bluetooth", "crash", "internet", "smart", "data", "chip")) else None


# --- food -------------------------------------------------------------------------------

@labeling_function()
def lf_food_words(x):
    return "food" if _has(x, ("food", "restaurant", "delicious", "recipe", "chef", "kitchen", "cooking")) else None


@labeling_function()
def lf_food_meals(x):
    # noisy: "declares at lunch", "showers after lunch"
    return "food" if _has(x, ("dinner", "lunch", "breakfast", "brunch", "menu")) else None


@labeling_function()
def lf_food_taste(x):
    return "food" if _has(x, ("sauce", "flavor", "cheese", "tasted", "sweet", "bread", "pizza", "chicken", "soup", "tacos", "butter", "coffee", "pasta", "dessert")) else None


@labeling_function()
def lf_food_hot_spicy(x):
    # noisy: hot weather, hot gadgets
    return "food" if re.search(r"\b(hot|spicy|chili)\b", x.text, re.I) else None


# --- weather ----------------------------------------------------------------------------

@labeling_function()
def lf_weather_precip(x):
    # noisy substrings: "trained", "brainstorm", "snowboard"
    return "weather" if _has(x, ("rain", "snow", "storm", "sleet")) else None


@labeling_function()
def lf_weather_words(x):
    return "weather" if _has(x, ("forecast", "weather", "sunny", "cloud", "wind", "humid", "fog", "tornado", "hurricane", "drizzle", "flood", "heat", "sky")) else None


@labeling_function()
def lf_weather_temperature(x):
    return "weather" if re.search(r"\d+\s?°|\bdegrees\b|temperature", x.text, re.I) else None


@labeling_function()
def lf_weather_cold(x):
    # noisy: "ice cold shooting", "cold brew"
    return "weather" if re.search(r"\b(cold|freezing|frost\w*|chill\w*)\b", x.text, re.I) else None
