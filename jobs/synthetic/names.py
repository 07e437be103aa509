# ruff: noqa: RUF001  (the look-alike letters are the point: real names carry them)
"""Word lists for synthetic districts: unicode-rich on purpose (accents, apostrophes, hyphens,
other scripts), so exports, snapshots and restores meet names that are not plain ASCII."""

from __future__ import annotations

import unicodedata

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Zoë", "José", "Amélie", "Chloé", "Renée", "Björn", "Søren", "Mía", "Inés", "Nuño", "Zoé",
    "Noémie", "Anaïs", "Łukasz", "Dorothée", "Aoife", "Siobhán", "Seán", "Dáire", "D'Andre",
    "De'Shawn", "Ja'Marcus", "Mary-Kate", "Jean-Luc", "Anne-Marie", "François", "Joaquín",
    "Ximena", "Sofía", "Valentína", "Lucía", "Tomás", "Andrés", "Raúl", "Héctor", "Ngozi",
    "Chiamaka", "Oluwaseun", "Aarav", "Priyá", "Saanvi", "Huyền", "Thảo", "Minh", "Jiří", "Radek",
    "Ömer", "Gülşen", "Çağla", "Ayşe", "Kalani", "Mālie", "Keʻala", "Olivia", "Liam", "Emma",
    "Noah", "Ava", "Elijah", "Mia", "James", "Harper", "Lucas", "Amelia", "Mateo", "Evelyn",
    "Ethan", "Abigail", "Aiden", "Grace", "Wyatt", "Nora", "美咲", "李雷", "Дмитрий",
)

LAST_NAMES: tuple[str, ...] = (
    "O'Brien", "O'Connor", "D'Angelo", "D'Souza", "Ní Bhriain", "Mc'Kay", "García", "Martínez",
    "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez", "Núñez", "Muñoz", "Peña",
    "Ibáñez", "Castañeda", "Nguyễn", "Trần", "Lê", "Phạm", "Müller", "Schröder", "Köhler", "Weiß",
    "Jäger", "Åström", "Østergaard", "Söderström", "Nowak", "Wójcik", "Kowalczyk", "Dvořák",
    "Novák", "Yılmaz", "Öztürk", "Çelik", "Smith-Jones", "Lee-Chang", "Van der Berg",
    "de la Cruz", "St. John", "Okonkwo", "Adébáyọ̀", "Mensah", "Kealoha", "Kahananui", "Patel",
    "Šimůnek", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark", "Lewis", "Robinson",
    "Walker", "Young", "King", "王", "Иванова",
)

PLACES: tuple[str, ...] = (
    "Cañon City", "Española", "La Cañada", "Coeur d'Alene", "Des Moines", "Île Verte", "Santa Fé",
    "San José", "Peñasco", "Manteo", "Ka'ū", "Hilo", "Lāhainā", "Bayou Lafourche", "Lake O'Hara",
    "Saint-Régis", "Baton Rouge", "Grand Forks", "Cedar Rapids", "Red Wing", "Mesa Verde",
    "Blue Ridge", "Pine Bluff", "Eagle Pass", "Cheyenne", "Tahlequah", "Walla Walla", "Bend",
    "Helena", "Bozeman", "Laramie", "Sioux Falls", "Dubuque", "Duluth", "Marquette", "Kalamazoo",
    "Ypsilanti", "Akron", "Toledo", "Erie", "Scranton", "Bangor", "Burlington", "Nashua",
    "Providence", "Hartford", "Trenton", "Dover", "Annapolis", "Roanoke", "Asheville",
    "Greenville", "Savannah", "Macon", "Tallahassee", "Mobile", "Biloxi", "Natchez", "Memphis",
    "Paducah", "Lexington", "Springfield", "Peoria", "Joliet", "Muncie", "Terre Haute", "Wichita",
    "Topeka", "Lincoln", "Amarillo",
)

DISTRICT_KINDS: tuple[str, ...] = (
    "Unified School District", "Public Schools", "School District", "Independent School District",
    "County Schools", "Consolidated Schools", "Area School District", "City Schools",
)

SCHOOL_KINDS: tuple[str, ...] = (
    "Elementary School", "Elementary School", "Elementary School", "Primary School",
    "Middle School", "Intermediate School", "K-8 Academy", "High School",
)

SCHOOL_PATRONS: tuple[str, ...] = (
    "César Chávez", "Sojourner Truth", "Roberto Clemente", "Sacagawea", "Thurgood Marshall",
    "Dolores Huerta", "Sally Ride", "Frida Kahlo", "Ruth Bader Ginsburg", "Daniel K. Inouye",
    "Maya Angelou", "Jackie Robinson", "Eleanor Roosevelt", "Benjamin Banneker", "Patsy Mink",
    "Oak Grove", "Riverside", "Hillcrest", "Lakeview", "Maplewood", "Sunnyside", "Fairview",
    "Brookside", "Willow Creek", "Prairie View", "Cedar Hollow", "Mountain View", "Bayside",
)

STATES: tuple[str, ...] = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
    "VA", "WA", "WV", "WI", "WY",
)

FACTS_PATHWAYS: tuple[str, ...] = (
    "Addition Facts Fluency", "Subtraction Facts Fluency", "Multiplication Facts Fluency",
    "Division Facts Fluency", "Mixed Facts Review",
)
# fmt: on


def ascii_slug(name: str) -> str:
    """`Zoë O'Brien` -> `zoeobrien`, for e-mail addresses; empty for names in other scripts."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())
