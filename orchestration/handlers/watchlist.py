"""A bundled, entirely fictional sanctions-style watch list for the KYC demo.

Every name here is invented; any likeness to a real person or company is accidental.
Names and aliases are matched after kyc.normalize's normalisation (accents, case,
whitespace and legal suffixes do not matter).
"""

from __future__ import annotations

from dataclasses import dataclass

LIST_NAME = "Arbiter demo watch list (fictional)"
LIST_VERSION = "2026.1"


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    aliases: tuple[str, ...]
    country: str
    kind: str  # "person" or "company"


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "WL-001", "Barnaby Quillfeather", ("Captain Quillfeather", "Barney Quill"), "GB", "person"
    ),
    Entry("WL-002", "Zorblax Trading GmbH", ("Zorblax Handels AG",), "DE", "company"),
    Entry("WL-003", "Orlenna Vexhollow", ("Madame Vex", "Orlena Vexholow"), "FR", "person"),
    Entry("WL-004", "Grimsby Fogwhistle", ("Grim Fogwhistle",), "IE", "person"),
    Entry("WL-005", "Thaddeus Nightjar-Plume", ("Tad Plume",), "US", "person"),
    Entry("WL-006", "Élodie Crumblewick", ("Elodie Crumble",), "BE", "person"),
    Entry("WL-007", "Octavian Gloomsbury", (), "GB", "person"),
    Entry("WL-008", "Quasar Freight Ltd", ("Quasar Shipping Limited",), "MT", "company"),
    Entry("WL-009", "Piotr Żabłocki-Moonshadow", ("Peter Moonshadow",), "PL", "person"),
    Entry("WL-010", "Ignatius Puddlesworth", ("Iggy Puddles",), "NL", "person"),
    Entry("WL-011", "Blackmoor Lantern Holdings Inc", ("Lantern Holdings",), "US", "company"),
    Entry("WL-012", "Seraphina Nettlebrook", ("Sera Nettle",), "AT", "person"),
    Entry("WL-013", "Cornelius Wobbleton", (), "CH", "person"),
    Entry("WL-014", "Ravensgate Bullion SA", ("Ravensgate Gold",), "LU", "company"),
    Entry("WL-015", "Henrietta Marrowbone", ("Hetty Marrow",), "GB", "person"),
    Entry("WL-016", "Fennimore Dustbramble", (), "US", "person"),
    Entry("WL-017", "Isolde Thistlewaite", ("Isa Thistle",), "SE", "person"),
    Entry("WL-018", "Crimson Kettle Logistics LLC", ("Red Kettle Logistics",), "US", "company"),
    Entry("WL-019", "Bartholomew Snickerdoodle", ("Bart Doodle",), "CA", "person"),
    Entry("WL-020", "Ludmila Frostwhisker", (), "CZ", "person"),
    Entry("WL-021", "Percival Gumdrop", ("Percy Gumdrop",), "AU", "person"),
    Entry("WL-022", "Nebula Ventures AG", ("Nebula Capital",), "CH", "company"),
    Entry("WL-023", "Wilhelmina Cobblepot-Grey", ("Mina Grey",), "DE", "person"),
    Entry("WL-024", "Archibald Fizzlewick", ("Archie Fizz",), "NZ", "person"),
    Entry("WL-025", "Jörg Übermoor", ("Joerg Uebermoor",), "DE", "person"),
    Entry("WL-026", "Clementine Hollowquill", (), "FR", "person"),
    Entry("WL-027", "Silvertongue Import Export BV", ("Silvertongue Trading",), "NL", "company"),
    Entry("WL-028", "Montgomery Scuttlebutt", ("Monty Scuttle",), "GB", "person"),
    Entry("WL-029", "Ottoline Pepperpot", (), "IT", "person"),
    Entry("WL-030", "Mordecai Thimbleweed", ("Doc Thimble",), "US", "person"),
)
