"""The flights catalog: depot's bundled example and default, the public NYC 2013 flights tables.

A catalog of your own looks just like this one (see `depot init`); depot's system tables
(`sources`, `ingest_batches`, `rejected_rows`) come with every `Catalog()`.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated

from depot import Catalog, Doc, ForeignKey, Ge, Interval, Numeric, OneOf, Pattern, References

CATALOG = Catalog()

UPPER_CODE_2_3 = Pattern(r"[A-Z0-9]{2,3}")
UPPER_CODE_3_4 = Pattern(r"[A-Z0-9]{3,4}")


# --- primary: independent reference data ---------------------------------------------------------


@CATALOG.table("airlines", group="primary", natural_key=("carrier",))
class Airline:
    carrier: Annotated[str, UPPER_CODE_2_3, Doc("Two or three letter carrier code.")]
    name: str


@CATALOG.table("airports", group="primary", natural_key=("faa",))
class Airport:
    faa: Annotated[str, UPPER_CODE_3_4, Doc("FAA airport code.")]
    name: str
    lat: Annotated[float, Interval(ge=-90, le=90)]
    lon: Annotated[float, Interval(ge=-180, le=180)]
    alt: int
    tz: int | None = None
    dst: Annotated[str | None, Pattern(r"[A-Z]")] = None
    tzone: str | None = None


@CATALOG.table("manufacturers", group="primary", natural_key=("name",))
class Manufacturer:
    name: str


# --- secondary: reference data that points at primary --------------------------------------------


@CATALOG.table("planes", group="secondary", natural_key=("tailnum",))
class Plane:
    tailnum: str
    year: int | None = None
    type: str | None = None
    manufacturer: Annotated[str, References("manufacturers")]
    model: str | None = None
    engines: Annotated[int | None, Ge(0)] = None
    seats: Annotated[int | None, Ge(0)] = None
    speed: Annotated[int | None, Ge(0)] = None
    engine: str | None = None


@CATALOG.table("routes", group="secondary", natural_key=("carrier", "origin", "dest"))
class Route:
    carrier: Annotated[str, References("airlines")]
    origin: Annotated[str, References("airports")]
    dest: Annotated[str, References("airports")]
    distance: Annotated[float | None, Ge(0)] = None


# --- instances: time-stamped observations --------------------------------------------------------


@CATALOG.table(
    "flights",
    group="instances",
    natural_key=("year", "month", "day", "carrier", "flight", "origin"),
    surrogate_id=True,
)
class Flight:
    year: int
    month: Annotated[int, Interval(ge=1, le=12)]
    day: Annotated[int, Interval(ge=1, le=31)]
    dep_time: int | None = None
    sched_dep_time: int
    dep_delay: float | None = None
    arr_time: int | None = None
    sched_arr_time: int
    arr_delay: float | None = None
    carrier: Annotated[str, References("airlines")]
    flight: int
    tailnum: Annotated[str | None, References("planes", soft=True)] = None
    origin: Annotated[str, References("airports")]
    dest: Annotated[str, References("airports")]
    air_time: float | None = None
    distance: Annotated[float, Ge(0)]
    hour: int
    minute: int
    time_hour: dt.datetime


@CATALOG.table("weather", group="instances", natural_key=("origin", "time_hour"), surrogate_id=True)
class Weather:
    origin: Annotated[str, References("airports")]
    year: int | None = None
    month: int | None = None
    day: int | None = None
    hour: int | None = None
    temp: float | None = None
    dewp: float | None = None
    humid: float | None = None
    wind_dir: float | None = None
    wind_speed: float | None = None
    wind_gust: float | None = None
    precip: float | None = None
    pressure: float | None = None
    visib: float | None = None
    time_hour: dt.datetime


@CATALOG.table(
    "fares",
    group="instances",
    natural_key=("carrier", "origin", "dest", "departure_date", "cabin", "observed_at"),
    surrogate_id=True,
    references=(ForeignKey(("carrier", "origin", "dest"), "routes", ()),),
)
class Fare:
    carrier: str
    origin: str
    dest: str
    departure_date: dt.date
    cabin: Annotated[str, OneOf(("economy", "premium", "business", "first"))]
    price: Annotated[decimal.Decimal, Numeric(12, 2), Ge(0)]
    currency: Annotated[str, Pattern(r"[A-Z]{3}"), Doc("ISO 4217 currency code.")]
    observed_at: dt.datetime

