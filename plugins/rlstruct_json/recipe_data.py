"""Built-in vocabulary for synthetic json-recipes records: dish families, ingredients, method templates.

Each :class:`Family` is a kind of dish (soup, pasta, ...). A recipe takes one *main* ingredient,
all the family's *base* ingredients and one to three *extras*. Step templates name the base
ingredients literally and use ``{main}``, ``{extras}``, ``{cook}`` and ``{simmer}`` for the rest,
so every ingredient is mentioned by at least one step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ingredient:
    """One ingredient with a sensible unit and amount for a single serving."""

    name: str
    unit: str
    per_serving: float
    title: str = ""
    """How the ingredient reads in a dish name ("Chicken" for chicken breast); default: title case."""
    scales: bool = True
    """False for amounts that do not grow with servings (a pinch of salt)."""

    @property
    def dish_word(self) -> str:
        """The word(s) used for this ingredient in a dish name."""
        return self.title or self.name.title()


@dataclass(frozen=True)
class Family:
    """A kind of dish: its ingredient pools, name pattern, timings and method."""

    noun: str
    name_pattern: str
    """Format string with ``{adjective}``, ``{main}`` and ``{extra}`` (first extra) placeholders."""
    adjectives: tuple[str, ...]
    mains: tuple[Ingredient, ...]
    base: tuple[Ingredient, ...]
    extras: tuple[Ingredient, ...]
    prep_minutes: tuple[int, ...]
    cook_minutes: tuple[int, ...]
    steps: tuple[str, ...]


def _i(name: str, unit: str, per_serving: float, title: str = "", scales: bool = True) -> Ingredient:
    return Ingredient(name, unit, per_serving, title, scales)


SALT = _i("salt", "pinch", 1, scales=False)
PEPPER = _i("black pepper", "pinch", 1, scales=False)

FAMILIES: tuple[Family, ...] = (
    Family(
        noun="soup",
        name_pattern="{adjective}{main} Soup",
        adjectives=("", "Creamy ", "Rustic ", "Hearty ", "Spiced ", "Simple "),
        mains=(
            _i("tomatoes", "g", 150, "Tomato"),
            _i("carrots", "g", 120, "Carrot"),
            _i("pumpkin", "g", 150),
            _i("red lentils", "g", 50, "Red Lentil"),
            _i("potatoes", "g", 150, "Potato"),
            _i("mushrooms", "g", 120, "Mushroom"),
            _i("sweet potato", "g", 150),
            _i("cauliflower", "g", 150),
        ),
        base=(
            _i("onion", "piece", 0.25),
            _i("olive oil", "tbsp", 0.5),
            _i("vegetable stock", "ml", 250),
            SALT,
            PEPPER,
        ),
        extras=(
            _i("garlic", "clove", 0.5),
            _i("celery", "g", 30),
            _i("leek", "g", 50),
            _i("thyme", "tsp", 0.25),
            _i("cream", "ml", 30),
            _i("ginger", "g", 5),
            _i("cumin", "tsp", 0.25),
            _i("paprika", "tsp", 0.25),
        ),
        prep_minutes=(10, 15, 20),
        cook_minutes=(25, 30, 35, 40),
        steps=(
            "Peel and chop the onion and the {main}.",
            "Heat the olive oil in a large pot and soften the onion for 5 minutes.",
            "Add the {main} with the {extras} and cook for 3 minutes, stirring.",
            "Pour in the vegetable stock, bring to the boil and simmer for {simmer} minutes.",
            "Blend until smooth and season with the salt and black pepper.",
        ),
    ),
    Family(
        noun="pasta",
        name_pattern="{adjective}{main} with {extra}",
        adjectives=("", "Quick ", "Weeknight ", "Garlicky "),
        mains=(
            _i("spaghetti", "g", 100),
            _i("penne", "g", 100),
            _i("fusilli", "g", 100),
            _i("linguine", "g", 100),
            _i("rigatoni", "g", 100),
            _i("tagliatelle", "g", 100),
        ),
        base=(
            _i("garlic", "clove", 0.5),
            _i("olive oil", "tbsp", 0.5),
            _i("parmesan", "g", 15),
            SALT,
        ),
        extras=(
            _i("mushrooms", "g", 80),
            _i("spinach", "g", 40),
            _i("bacon", "g", 50),
            _i("zucchini", "g", 80),
            _i("cherry tomatoes", "g", 80),
            _i("prawns", "g", 70),
            _i("peas", "g", 50),
            _i("chilli flakes", "pinch", 1, scales=False),
            _i("lemon", "piece", 0.25),
            _i("cream", "ml", 40),
            _i("basil", "g", 3),
        ),
        prep_minutes=(5, 10, 15),
        cook_minutes=(10, 12, 15),
        steps=(
            "Boil the {main} in a large pot of water with the salt for {simmer} minutes, then drain.",
            "Meanwhile, warm the olive oil in a pan and fry the garlic for 1 minute.",
            "Add the {extras} and cook for 5 minutes.",
            "Toss the drained {main} into the pan and mix well.",
            "Serve topped with the parmesan.",
        ),
    ),
    Family(
        noun="salad",
        name_pattern="{adjective}{main} Salad with {extra}",
        adjectives=("", "Fresh ", "Summer ", "Crunchy "),
        mains=(
            _i("lettuce", "g", 60),
            _i("spinach", "g", 50),
            _i("rocket", "g", 40),
            _i("kale", "g", 50),
            _i("mixed greens", "g", 60),
        ),
        base=(
            _i("olive oil", "tbsp", 1),
            _i("lemon juice", "tbsp", 0.5),
            _i("honey", "tsp", 0.5),
            SALT,
        ),
        extras=(
            _i("feta", "g", 30),
            _i("cucumber", "g", 60),
            _i("cherry tomatoes", "g", 60),
            _i("avocado", "piece", 0.5),
            _i("walnuts", "g", 15),
            _i("chickpeas", "g", 60),
            _i("red onion", "piece", 0.25),
            _i("radishes", "g", 30),
            _i("sweetcorn", "g", 40),
        ),
        prep_minutes=(10, 15, 20),
        cook_minutes=(0,),
        steps=(
            "Wash and dry the {main}.",
            "Chop the {extras}.",
            "Whisk the olive oil, lemon juice, honey and salt into a dressing.",
            "Combine the {main} and the {extras} in a bowl, pour over the dressing and toss.",
        ),
    ),
    Family(
        noun="stir-fry",
        name_pattern="{adjective}{main} Stir-Fry",
        adjectives=("", "Quick ", "Sticky ", "Spicy "),
        mains=(
            _i("chicken breast", "g", 150, "Chicken"),
            _i("tofu", "g", 150),
            _i("beef strips", "g", 150, "Beef"),
            _i("prawns", "g", 120, "Prawn"),
            _i("pork loin", "g", 150, "Pork"),
        ),
        base=(
            _i("rice", "g", 75),
            _i("soy sauce", "tbsp", 1),
            _i("vegetable oil", "tbsp", 0.5),
            _i("garlic", "clove", 0.5),
            _i("ginger", "g", 5),
        ),
        extras=(
            _i("broccoli", "g", 80),
            _i("red pepper", "piece", 0.5),
            _i("carrot", "g", 60),
            _i("snap peas", "g", 60),
            _i("mushrooms", "g", 60),
            _i("spring onions", "piece", 1),
            _i("bok choy", "g", 80),
            _i("baby corn", "g", 50),
        ),
        prep_minutes=(10, 15, 20),
        cook_minutes=(15, 20, 25),
        steps=(
            "Cook the rice in boiling water for {simmer} minutes and keep it warm.",
            "Slice the {main} and the {extras} into thin strips.",
            "Heat the vegetable oil in a wok and stir-fry the {main} for 4 minutes.",
            "Add the garlic, ginger and {extras} and stir-fry for 3 minutes more.",
            "Stir in the soy sauce and serve over the rice.",
        ),
    ),
    Family(
        noun="curry",
        name_pattern="{adjective}{main} Curry",
        adjectives=("", "Mild ", "Spicy ", "Creamy ", "Easy "),
        mains=(
            _i("chickpeas", "g", 120, "Chickpea"),
            _i("chicken thighs", "g", 150, "Chicken"),
            _i("red lentils", "g", 70, "Lentil"),
            _i("cauliflower", "g", 150),
            _i("sweet potato", "g", 150),
            _i("paneer", "g", 100),
        ),
        base=(
            _i("onion", "piece", 0.25),
            _i("garlic", "clove", 0.5),
            _i("curry powder", "tsp", 1),
            _i("coconut milk", "ml", 100),
            _i("vegetable oil", "tbsp", 0.5),
            _i("rice", "g", 75),
        ),
        extras=(
            _i("spinach", "g", 30),
            _i("tomatoes", "g", 60),
            _i("coriander", "g", 3),
            _i("ginger", "g", 5),
            _i("lime", "piece", 0.25),
            _i("peas", "g", 40),
            _i("green beans", "g", 50),
        ),
        prep_minutes=(10, 15, 20),
        cook_minutes=(25, 30, 35, 40),
        steps=(
            "Cook the rice and keep it warm.",
            "Fry the chopped onion and garlic in the vegetable oil for 5 minutes.",
            "Stir in the curry powder and cook for 1 minute.",
            "Add the {main} and the coconut milk and simmer for {simmer} minutes.",
            "Stir through the {extras}, cook for 2 more minutes and serve with the rice.",
        ),
    ),
    Family(
        noun="pancakes",
        name_pattern="{adjective}{main} Pancakes",
        adjectives=("", "Fluffy ", "Easy ", "Sunday "),
        mains=(
            _i("blueberries", "g", 40, "Blueberry"),
            _i("banana", "piece", 0.5),
            _i("apple", "piece", 0.5),
            _i("chocolate chips", "g", 20, "Chocolate Chip"),
            _i("strawberries", "g", 40, "Strawberry"),
            _i("raspberries", "g", 40, "Raspberry"),
        ),
        base=(
            _i("flour", "g", 60),
            _i("milk", "ml", 80),
            _i("eggs", "piece", 0.5),
            _i("sugar", "tbsp", 0.5),
            _i("butter", "g", 10),
            _i("baking powder", "tsp", 0.5),
            SALT,
        ),
        extras=(
            _i("cinnamon", "tsp", 0.25),
            _i("vanilla extract", "tsp", 0.25),
            _i("lemon zest", "tsp", 0.25),
            _i("yogurt", "g", 30),
            _i("nutmeg", "pinch", 1, scales=False),
        ),
        prep_minutes=(10, 15),
        cook_minutes=(15, 20, 25),
        steps=(
            "Whisk the flour, sugar, baking powder and salt in a bowl.",
            "Beat in the milk and eggs to make a smooth batter.",
            "Fold in the {main} and the {extras}.",
            "Melt a little of the butter in a frying pan over medium heat.",
            "Cook ladlefuls of batter for 2 minutes on each side, about {cook} minutes in all.",
        ),
    ),
    Family(
        noun="omelette",
        name_pattern="{adjective}{main} Omelette",
        adjectives=("", "Fluffy ", "Quick ", "Breakfast "),
        mains=(
            _i("cheddar", "g", 30, "Cheese"),
            _i("ham", "g", 30),
            _i("mushrooms", "g", 40, "Mushroom"),
            _i("spinach", "g", 20),
            _i("tomato", "g", 50),
            _i("smoked salmon", "g", 30),
        ),
        base=(
            _i("eggs", "piece", 2),
            _i("milk", "tbsp", 1),
            _i("butter", "g", 10),
            SALT,
            PEPPER,
        ),
        extras=(
            _i("chives", "g", 2),
            _i("parsley", "g", 2),
            _i("red onion", "piece", 0.25),
            _i("feta", "g", 20),
            _i("green pepper", "piece", 0.25),
        ),
        prep_minutes=(5, 10),
        cook_minutes=(5, 8, 10),
        steps=(
            "Beat the eggs with the milk, salt and black pepper.",
            "Melt the butter in a non-stick pan over medium heat.",
            "Pour in the eggs and cook for {cook} minutes until almost set.",
            "Scatter over the {main} and the {extras}, fold in half and serve.",
        ),
    ),
)
"""Every dish family the generator draws from."""

PROMPT_TEMPLATES: tuple[str, ...] = (
    "Write a recipe for {dish} for {people} using {ingredients}.",
    "Give me a recipe for {dish} that serves {servings}, made with {ingredients}.",
    "I want to cook {dish} for {people}. Write the recipe; it uses {ingredients}.",
    "Create a recipe for {dish} ({servings} servings) with {ingredients}.",
)
"""How a synthetic prompt asks for a recipe (dish, servings and every ingredient are stated)."""
