//! The `shop` demo dataset: a small, plausible e-commerce warehouse generated in memory at
//! start.
//!
//! Deterministic by construction: every table draws from its own [`SplitMix64`] stream seeded
//! from [`DEMO_SEED`], so the same rows come out on every machine and every run (and changing
//! one table's generator leaves the others alone). Only IEEE-exact float operations are used
//! (see [`crate::rng`]).
//!
//! The shape is meant to make demo questions interesting: customer ids follow signup order and
//! signups grow over time; a few customers order far more than most; orders follow growth,
//! weekdays, seasons and Black Friday; toys peak in December and sports in summer; product
//! popularity is Zipf-like within each category; enterprise customers buy in bulk with contract
//! discounts; recent orders are still pending or shipped.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::rng::{Cumulative, SplitMix64};

/// The seed of the demo data. Changing it changes every row (and the tests' checksums).
pub const DEMO_SEED: u64 = 0x5EED_B0A1_0000_2025;

/// Name of the demo dataset.
pub const DEMO_DATASET: &str = "shop";

/// Description of the demo dataset.
pub const DEMO_DESCRIPTION: &str = "Demo e-commerce shop (generated, deterministic): customers, \
products, orders from 2023-01-01 to 2025-12-31 and their order lines. Revenue of a line is \
quantity * unit_price * (1 - discount).";

const CUSTOMERS: usize = 5_000;
const PRODUCTS: usize = 300;
const ORDERS: usize = 100_000;

/// One generated table with its documentation.
pub(crate) struct DemoTable {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) batch: RecordBatch,
    /// One description per column, in schema order.
    pub(crate) column_descriptions: Vec<&'static str>,
}

// ---------------------------------------------------------------------------------------------
// Calendar helpers (days since 1970-01-01, the Arrow Date32 encoding)
// ---------------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

/// Black Friday: the day after the fourth Thursday of November.
fn black_friday(year: i64) -> i64 {
    let nov1 = days_from_civil(year, 11, 1);
    let first_thursday = nov1 + (4 - weekday(nov1)).rem_euclid(7);
    first_thursday + 21 + 1
}

fn to_date32(day: i64) -> i32 {
    i32::try_from(day).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------------------------

struct Country {
    name: &'static str,
    weight: f64,
    cities: &'static [(&'static str, f64)],
    first_names: &'static [&'static str],
    last_names: &'static [&'static str],
}

const COUNTRIES: &[Country] = &[
    Country {
        name: "United States",
        weight: 0.30,
        cities: &[
            ("New York", 0.25),
            ("Los Angeles", 0.20),
            ("Chicago", 0.15),
            ("Houston", 0.12),
            ("Seattle", 0.10),
            ("Austin", 0.10),
            ("Boston", 0.08),
        ],
        first_names: &[
            "James", "Mary", "Michael", "Jennifer", "David", "Linda", "Robert", "Sarah", "John",
            "Emily", "Daniel", "Jessica", "Chris", "Ashley", "Matthew",
        ],
        last_names: &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia",
            "Wilson", "Anderson", "Taylor", "Moore", "Martin", "Lee", "Clark",
        ],
    },
    Country {
        name: "United Kingdom",
        weight: 0.12,
        cities: &[
            ("London", 0.45),
            ("Manchester", 0.18),
            ("Birmingham", 0.15),
            ("Edinburgh", 0.12),
            ("Bristol", 0.10),
        ],
        first_names: &[
            "Oliver", "Amelia", "George", "Olivia", "Harry", "Isla", "Jack", "Emily", "Charlie",
            "Sophie", "Thomas", "Grace",
        ],
        last_names: &[
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas",
            "Roberts", "Walker", "Wright", "Hughes",
        ],
    },
    Country {
        name: "Germany",
        weight: 0.11,
        cities: &[
            ("Berlin", 0.30),
            ("Munich", 0.25),
            ("Hamburg", 0.20),
            ("Frankfurt", 0.15),
            ("Cologne", 0.10),
        ],
        first_names: &[
            "Lukas", "Anna", "Leon", "Mia", "Finn", "Hannah", "Jonas", "Lena", "Paul", "Laura",
            "Felix", "Julia",
        ],
        last_names: &[
            "Mueller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "Koch",
            "Richter",
        ],
    },
    Country {
        name: "France",
        weight: 0.09,
        cities: &[
            ("Paris", 0.45),
            ("Lyon", 0.20),
            ("Marseille", 0.15),
            ("Toulouse", 0.10),
            ("Bordeaux", 0.10),
        ],
        first_names: &[
            "Louis", "Emma", "Gabriel", "Jade", "Hugo", "Louise", "Arthur", "Alice", "Jules",
            "Chloe", "Adam", "Lea",
        ],
        last_names: &[
            "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
            "Leroy", "Moreau", "Simon", "Laurent",
        ],
    },
    Country {
        name: "Canada",
        weight: 0.08,
        cities: &[
            ("Toronto", 0.40),
            ("Vancouver", 0.25),
            ("Montreal", 0.25),
            ("Calgary", 0.10),
        ],
        first_names: &[
            "Liam",
            "Olivia",
            "Noah",
            "Emma",
            "William",
            "Charlotte",
            "Benjamin",
            "Ava",
            "Lucas",
            "Chloe",
            "Ethan",
            "Sophia",
        ],
        last_names: &[
            "Tremblay",
            "Smith",
            "Roy",
            "Gagnon",
            "Brown",
            "Martin",
            "Wilson",
            "MacDonald",
            "Taylor",
            "Campbell",
            "Anderson",
            "Leblanc",
        ],
    },
    Country {
        name: "Australia",
        weight: 0.06,
        cities: &[
            ("Sydney", 0.40),
            ("Melbourne", 0.35),
            ("Brisbane", 0.15),
            ("Perth", 0.10),
        ],
        first_names: &[
            "Jack",
            "Charlotte",
            "William",
            "Mia",
            "Oliver",
            "Isla",
            "Noah",
            "Ava",
            "Thomas",
            "Grace",
            "Lachlan",
            "Chloe",
        ],
        last_names: &[
            "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson",
            "Martin", "White", "Anderson", "Walker",
        ],
    },
    Country {
        name: "Japan",
        weight: 0.07,
        cities: &[
            ("Tokyo", 0.50),
            ("Osaka", 0.25),
            ("Yokohama", 0.15),
            ("Nagoya", 0.10),
        ],
        first_names: &[
            "Haruto", "Yui", "Sota", "Hina", "Yuto", "Sakura", "Riku", "Aoi", "Ren", "Mei",
            "Kaito", "Yuna",
        ],
        last_names: &[
            "Sato",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Watanabe",
            "Ito",
            "Yamamoto",
            "Nakamura",
            "Kobayashi",
            "Kato",
            "Yoshida",
            "Yamada",
        ],
    },
    Country {
        name: "Brazil",
        weight: 0.06,
        cities: &[
            ("Sao Paulo", 0.45),
            ("Rio de Janeiro", 0.30),
            ("Belo Horizonte", 0.15),
            ("Brasilia", 0.10),
        ],
        first_names: &[
            "Miguel",
            "Alice",
            "Arthur",
            "Sophia",
            "Heitor",
            "Helena",
            "Bernardo",
            "Valentina",
            "Davi",
            "Laura",
            "Gabriel",
            "Isabella",
        ],
        last_names: &[
            "Silva",
            "Santos",
            "Oliveira",
            "Souza",
            "Rodrigues",
            "Ferreira",
            "Alves",
            "Pereira",
            "Lima",
            "Gomes",
            "Costa",
            "Ribeiro",
        ],
    },
    Country {
        name: "India",
        weight: 0.06,
        cities: &[
            ("Mumbai", 0.30),
            ("Bangalore", 0.30),
            ("Delhi", 0.25),
            ("Hyderabad", 0.15),
        ],
        first_names: &[
            "Aarav", "Saanvi", "Vivaan", "Ananya", "Aditya", "Diya", "Arjun", "Isha", "Rohan",
            "Priya", "Karan", "Neha",
        ],
        last_names: &[
            "Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta",
            "Joshi", "Rao", "Das",
        ],
    },
    Country {
        name: "Spain",
        weight: 0.05,
        cities: &[
            ("Madrid", 0.40),
            ("Barcelona", 0.35),
            ("Valencia", 0.15),
            ("Seville", 0.10),
        ],
        first_names: &[
            "Hugo",
            "Lucia",
            "Martin",
            "Sofia",
            "Pablo",
            "Martina",
            "Alejandro",
            "Maria",
            "Daniel",
            "Paula",
            "Alvaro",
            "Julia",
        ],
        last_names: &[
            "Garcia",
            "Rodriguez",
            "Gonzalez",
            "Fernandez",
            "Lopez",
            "Martinez",
            "Sanchez",
            "Perez",
            "Gomez",
            "Martin",
            "Jimenez",
            "Ruiz",
        ],
    },
];

const SEGMENTS: &[(&str, f64)] = &[
    ("consumer", 0.74),
    ("small_business", 0.20),
    ("enterprise", 0.06),
];

const EMAIL_DOMAINS: &[(&str, f64)] = &[
    ("example.com", 0.5),
    ("example.net", 0.25),
    ("example.org", 0.25),
];

/// How a category names its products.
#[derive(Clone, Copy)]
enum Naming {
    /// `Brand Item Series`, e.g. `Voltix Wireless Earbuds Pro`.
    BrandItemSeries,
    /// `The Series Item`, e.g. `The Silent Harbor` (books; the brand is the publisher).
    Title,
}

struct Category {
    name: &'static str,
    products: usize,
    demand: f64,
    brands: &'static [&'static str],
    /// Item names with their list-price range in dollars.
    items: &'static [(&'static str, f64, f64)],
    series: &'static [&'static str],
    naming: Naming,
    /// Demand multiplier per calendar month (January first).
    season: [f64; 12],
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "Electronics",
        products: 50,
        demand: 1.3,
        brands: &["Voltix", "Nimbus", "Auralis", "Kestrel", "Quanta"],
        items: &[
            ("Wireless Earbuds", 29.0, 199.0),
            ("Bluetooth Speaker", 25.0, 249.0),
            ("Smartwatch", 99.0, 399.0),
            ("Laptop", 549.0, 1899.0),
            ("Tablet", 199.0, 899.0),
            ("4K Monitor", 249.0, 799.0),
            ("USB-C Charger", 15.0, 59.0),
            ("Mechanical Keyboard", 49.0, 179.0),
            ("Wireless Mouse", 15.0, 89.0),
            ("Noise-Cancelling Headphones", 99.0, 399.0),
            ("Smartphone", 299.0, 1199.0),
            ("Portable SSD", 59.0, 249.0),
            ("Webcam", 29.0, 149.0),
            ("Power Bank", 19.0, 79.0),
        ],
        series: &[
            "Pro", "Lite", "Max", "Air", "Plus", "Mini", "Ultra", "X", "Go", "S",
        ],
        naming: Naming::BrandItemSeries,
        season: [
            0.9, 0.8, 0.85, 0.85, 0.9, 0.9, 0.95, 1.0, 1.0, 1.05, 1.6, 1.7,
        ],
    },
    Category {
        name: "Home & Kitchen",
        products: 50,
        demand: 1.0,
        brands: &["Hearthly", "CasaNova", "Kitchara", "Bramble & Co", "Lumo"],
        items: &[
            ("Chef's Knife", 25.0, 149.0),
            ("Cast Iron Skillet", 25.0, 89.0),
            ("Coffee Maker", 39.0, 299.0),
            ("Blender", 29.0, 199.0),
            ("Air Fryer", 59.0, 199.0),
            ("Cookware Set", 79.0, 399.0),
            ("Bath Towel Set", 19.0, 79.0),
            ("Bed Sheet Set", 29.0, 149.0),
            ("Table Lamp", 19.0, 129.0),
            ("Storage Bins", 12.0, 49.0),
            ("Vacuum Cleaner", 89.0, 599.0),
            ("Scented Candle", 9.0, 39.0),
            ("Dinnerware Set", 39.0, 189.0),
        ],
        series: &[
            "Classic",
            "Essential",
            "Premium",
            "Signature",
            "Everyday",
            "Deluxe",
            "Modern",
            "Heritage",
        ],
        naming: Naming::BrandItemSeries,
        season: [
            1.0, 0.9, 1.0, 1.0, 1.05, 1.0, 0.95, 0.95, 1.0, 1.05, 1.3, 1.4,
        ],
    },
    Category {
        name: "Clothing",
        products: 45,
        demand: 1.2,
        brands: &["Northpeak", "Urbanthread", "Solace", "Marlowe", "Tidewear"],
        items: &[
            ("T-Shirt", 9.0, 39.0),
            ("Hoodie", 29.0, 89.0),
            ("Jeans", 39.0, 129.0),
            ("Running Shoes", 59.0, 179.0),
            ("Rain Jacket", 59.0, 249.0),
            ("Wool Sweater", 39.0, 149.0),
            ("Sneakers", 49.0, 159.0),
            ("Dress", 29.0, 149.0),
            ("Socks 3-Pack", 9.0, 24.0),
            ("Baseball Cap", 12.0, 35.0),
            ("Chinos", 35.0, 99.0),
            ("Winter Coat", 89.0, 349.0),
        ],
        series: &[
            "Classic",
            "Slim Fit",
            "Relaxed",
            "Essential",
            "Organic",
            "Heritage",
            "Active",
        ],
        naming: Naming::BrandItemSeries,
        season: [
            0.9, 0.85, 1.05, 1.1, 1.1, 1.0, 0.95, 1.05, 1.1, 1.1, 1.3, 1.35,
        ],
    },
    Category {
        name: "Sports & Outdoors",
        products: 35,
        demand: 0.7,
        brands: &["Trailforge", "Summit & Stone", "Ridgeline", "AquaPeak"],
        items: &[
            ("Yoga Mat", 19.0, 79.0),
            ("Camping Tent", 79.0, 499.0),
            ("Hiking Backpack", 49.0, 229.0),
            ("Water Bottle", 12.0, 39.0),
            ("Dumbbell Set", 39.0, 249.0),
            ("Bike Helmet", 35.0, 149.0),
            ("Sleeping Bag", 49.0, 249.0),
            ("Trekking Poles", 29.0, 129.0),
            ("Fitness Tracker", 49.0, 199.0),
            ("Tennis Racket", 39.0, 229.0),
        ],
        series: &["Trail", "Pro", "Explorer", "Lite", "Summit", "Active"],
        naming: Naming::BrandItemSeries,
        season: [
            1.1, 0.9, 1.1, 1.3, 1.4, 1.45, 1.35, 1.1, 0.9, 0.8, 0.85, 0.9,
        ],
    },
    Category {
        name: "Books",
        products: 40,
        demand: 0.9,
        brands: &[
            "Lantern Press",
            "Bluequill Books",
            "Harbor House",
            "Meridian Publishing",
        ],
        items: &[
            ("Harbor", 8.0, 29.0),
            ("Garden", 8.0, 29.0),
            ("Kingdom", 9.0, 34.0),
            ("Algorithm", 19.0, 59.0),
            ("Orchard", 8.0, 27.0),
            ("River", 8.0, 27.0),
            ("Empire", 12.0, 39.0),
            ("Lighthouse", 8.0, 29.0),
            ("Cookbook", 15.0, 45.0),
            ("Atlas", 19.0, 49.0),
        ],
        series: &[
            "Silent", "Hidden", "Last", "Golden", "Broken", "Midnight", "Lost", "Wild", "Quiet",
            "Northern",
        ],
        naming: Naming::Title,
        season: [
            1.0, 0.95, 0.95, 0.95, 1.0, 1.1, 1.15, 1.05, 1.0, 1.0, 1.1, 1.4,
        ],
    },
    Category {
        name: "Beauty",
        products: 30,
        demand: 0.8,
        brands: &["Luminelle", "Verdana Botanics", "Glowra", "Pure & Petal"],
        items: &[
            ("Face Moisturizer", 12.0, 69.0),
            ("Vitamin C Serum", 15.0, 79.0),
            ("Shampoo", 7.0, 29.0),
            ("Conditioner", 7.0, 29.0),
            ("Lipstick", 9.0, 39.0),
            ("Sunscreen SPF 50", 9.0, 35.0),
            ("Perfume", 39.0, 149.0),
            ("Hair Dryer", 29.0, 199.0),
            ("Body Lotion", 8.0, 29.0),
            ("Eye Cream", 19.0, 89.0),
        ],
        series: &[
            "Hydrating",
            "Radiance",
            "Daily",
            "Sensitive",
            "Botanical",
            "Night",
        ],
        naming: Naming::BrandItemSeries,
        season: [
            0.95, 1.2, 1.0, 1.0, 1.15, 1.0, 0.95, 0.95, 1.0, 1.0, 1.2, 1.45,
        ],
    },
    Category {
        name: "Toys & Games",
        products: 25,
        demand: 0.6,
        brands: &["Playwise", "Brickland", "Tumble & Co", "Starforge Games"],
        items: &[
            ("Building Blocks Set", 19.0, 149.0),
            ("Board Game", 19.0, 69.0),
            ("Jigsaw Puzzle", 12.0, 39.0),
            ("Plush Bear", 12.0, 45.0),
            ("Remote Control Car", 29.0, 129.0),
            ("Card Game", 9.0, 29.0),
            ("Dollhouse", 49.0, 199.0),
            ("Science Kit", 24.0, 79.0),
            ("Drone", 59.0, 299.0),
        ],
        series: &[
            "Deluxe",
            "Junior",
            "Classic",
            "Family Edition",
            "Adventure",
            "Mega",
        ],
        naming: Naming::BrandItemSeries,
        season: [0.6, 0.6, 0.7, 0.7, 0.75, 0.8, 0.8, 0.85, 0.9, 1.1, 2.0, 2.8],
    },
    Category {
        name: "Grocery",
        products: 25,
        demand: 1.1,
        brands: &["Green Basket", "Harvest Lane", "Daily Pantry", "Kona Ridge"],
        items: &[
            ("Ground Coffee 1kg", 9.0, 29.0),
            ("Green Tea 100 Bags", 5.0, 19.0),
            ("Olive Oil 1L", 8.0, 29.0),
            ("Dark Chocolate Bar", 2.0, 8.0),
            ("Granola", 4.0, 12.0),
            ("Pasta 5-Pack", 5.0, 15.0),
            ("Almonds 500g", 7.0, 19.0),
            ("Honey 500g", 6.0, 18.0),
            ("Protein Bars 12-Pack", 14.0, 34.0),
            ("Sparkling Water 12-Pack", 5.0, 14.0),
        ],
        series: &["Organic", "Classic", "Premium", "Fair Trade", "Family Size"],
        naming: Naming::BrandItemSeries,
        season: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.2],
    },
];

const ORDER_MONTH_FACTOR: [f64; 12] = [
    0.85, 0.8, 0.95, 0.95, 1.0, 0.95, 0.95, 1.0, 0.95, 1.05, 1.35, 1.5,
];
const WEEKDAY_FACTOR: [f64; 7] = [1.1, 1.05, 0.95, 0.95, 0.95, 1.0, 1.1];
const DISCOUNTS: [f64; 6] = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30];

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// A separate stream per table, so tables don't shift each other's rows.
fn stream(table: u64) -> SplitMix64 {
    SplitMix64::new(DEMO_SEED ^ table.wrapping_mul(0xA24B_AED4_963E_E407))
}

struct Customer {
    signup: i64,
    segment: usize,
}

struct Product {
    category: usize,
    price_cents: i64,
}

/// The demo tables (`customers`, `products`, `orders`, `order_items`) as Arrow record batches,
/// for tools that run DataFusion on the same data (the export benchmark's ceiling).
pub fn tables() -> Vec<(&'static str, RecordBatch)> {
    generate().into_iter().map(|t| (t.name, t.batch)).collect()
}

/// Generates the four demo tables.
pub(crate) fn generate() -> Vec<DemoTable> {
    let (customers_table, customers) = customers();
    let (products_table, products) = products();
    let (orders_table, order_rows) = orders(&customers);
    let items_table = order_items(&customers, &products, &order_rows);
    vec![customers_table, products_table, orders_table, items_table]
}

fn schema(fields: &[(&str, DataType)]) -> Arc<Schema> {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(name, ty)| ArrowField::new(*name, ty.clone(), false))
            .collect::<Vec<_>>(),
    ))
}

fn batch(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> RecordBatch {
    // The columns are built right here to match the schema, so this cannot fail; an empty
    // batch keeps the signature infallible should it ever happen.
    RecordBatch::try_new(Arc::clone(&schema), columns)
        .unwrap_or_else(|_| RecordBatch::new_empty(schema))
}

/// Rounds a dollar amount to whole cents.
fn cents(dollars: f64) -> i64 {
    (dollars * 100.0).round() as i64
}

fn dollars(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn lowercase_ascii(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn customers() -> (DemoTable, Vec<Customer>) {
    let mut rng = stream(1);
    let start = days_from_civil(2020, 1, 1);
    let end = days_from_civil(2025, 12, 31);
    let span = (end - start + 1) as f64;

    // Density growing linearly over time (sqrt of a uniform): the shop keeps growing.
    let mut signups: Vec<i64> = (0..CUSTOMERS)
        .map(|_| start + ((rng.next_f64().sqrt() * span) as i64).min(end - start))
        .collect();
    // Ids are assigned in signup order, as a real sequence would.
    signups.sort_unstable();

    let country_weights: Vec<f64> = COUNTRIES.iter().map(|c| c.weight).collect();
    let segment_weights: Vec<f64> = SEGMENTS.iter().map(|s| s.1).collect();
    let domain_weights: Vec<f64> = EMAIL_DOMAINS.iter().map(|d| d.1).collect();

    let mut ids = Vec::with_capacity(CUSTOMERS);
    let mut names = Vec::with_capacity(CUSTOMERS);
    let mut emails = Vec::with_capacity(CUSTOMERS);
    let mut countries = Vec::with_capacity(CUSTOMERS);
    let mut cities = Vec::with_capacity(CUSTOMERS);
    let mut segments = Vec::with_capacity(CUSTOMERS);
    let mut dates = Vec::with_capacity(CUSTOMERS);
    let mut out = Vec::with_capacity(CUSTOMERS);

    for (i, signup) in signups.into_iter().enumerate() {
        let id = i as i64 + 1;
        let country = &COUNTRIES[rng.weighted(&country_weights)];
        let city_weights: Vec<f64> = country.cities.iter().map(|c| c.1).collect();
        let city = country.cities[rng.weighted(&city_weights)].0;
        let first = *rng.pick(country.first_names);
        let last = *rng.pick(country.last_names);
        let segment = rng.weighted(&segment_weights);
        let domain = EMAIL_DOMAINS[rng.weighted(&domain_weights)].0;

        ids.push(id);
        names.push(format!("{first} {last}"));
        emails.push(format!(
            "{}.{}{id}@{domain}",
            lowercase_ascii(first),
            lowercase_ascii(last)
        ));
        countries.push(country.name);
        cities.push(city);
        segments.push(SEGMENTS[segment].0);
        dates.push(to_date32(signup));
        out.push(Customer { signup, segment });
    }

    let schema = schema(&[
        ("customer_id", DataType::Int64),
        ("name", DataType::Utf8),
        ("email", DataType::Utf8),
        ("country", DataType::Utf8),
        ("city", DataType::Utf8),
        ("segment", DataType::Utf8),
        ("signup_date", DataType::Date32),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(emails)),
        Arc::new(StringArray::from(countries)),
        Arc::new(StringArray::from(cities)),
        Arc::new(StringArray::from(segments)),
        Arc::new(Date32Array::from(dates)),
    ];
    let table = DemoTable {
        name: "customers",
        description: "One row per registered customer (5,000). customer_id follows signup \
order. Join orders on customer_id.",
        batch: batch(schema, columns),
        column_descriptions: vec![
            "Unique customer id (primary key), assigned in signup order",
            "Full name (first and last name)",
            "Email address (unique; example domains)",
            "Country name, e.g. 'United States', 'Germany', 'Japan' (10 countries)",
            "City within the country, e.g. 'London', 'Tokyo'",
            "Customer segment: 'consumer', 'small_business' or 'enterprise'",
            "Date the customer signed up (2020-01-01 to 2025-12-31)",
        ],
    };
    (table, out)
}

fn products() -> (DemoTable, Vec<Product>) {
    let mut rng = stream(2);
    struct Draft {
        category: usize,
        name: String,
        brand: &'static str,
        price_cents: i64,
    }
    let mut drafts = Vec::with_capacity(PRODUCTS);
    let mut seen = HashSet::new();
    for (c, cat) in CATEGORIES.iter().enumerate() {
        for n in 0..cat.products {
            let brand = *rng.pick(cat.brands);
            let (item, lo, hi) = *rng.pick(cat.items);
            let series = *rng.pick(cat.series);
            let mut name = match cat.naming {
                Naming::BrandItemSeries => format!("{brand} {item} {series}"),
                Naming::Title => format!("The {series} {item}"),
            };
            if !seen.insert(name.clone()) {
                // A duplicate draw becomes a new model of the same line.
                name = format!("{name} {}", 2 + n % 7);
                if !seen.insert(name.clone()) {
                    name = format!("{name}-{n}");
                    seen.insert(name.clone());
                }
            }
            // Cheap variants are more common than expensive ones; prices end in .99.
            let u = rng.next_f64();
            let raw = lo + (hi - lo) * u * u;
            let whole = (raw.floor() as i64).max(1);
            drafts.push(Draft {
                category: c,
                name,
                brand,
                price_cents: (whole - 1) * 100 + 99,
            });
        }
    }
    // Ids are not grouped by category, like a real catalogue that grew over time.
    rng.shuffle(&mut drafts);

    let mut out = Vec::with_capacity(drafts.len());
    let ids: Vec<i64> = (1..=drafts.len() as i64).collect();
    let names: Vec<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
    let categories: Vec<&str> = drafts.iter().map(|d| CATEGORIES[d.category].name).collect();
    let brands: Vec<&str> = drafts.iter().map(|d| d.brand).collect();
    let prices: Vec<f64> = drafts.iter().map(|d| dollars(d.price_cents)).collect();
    for d in &drafts {
        out.push(Product {
            category: d.category,
            price_cents: d.price_cents,
        });
    }

    let schema = schema(&[
        ("product_id", DataType::Int64),
        ("name", DataType::Utf8),
        ("category", DataType::Utf8),
        ("brand", DataType::Utf8),
        ("unit_price", DataType::Float64),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(categories)),
        Arc::new(StringArray::from(brands)),
        Arc::new(Float64Array::from(prices)),
    ];
    let table = DemoTable {
        name: "products",
        description: "Product catalogue (300 products in 8 categories) with current list \
prices. Join order_items on product_id.",
        batch: batch(schema, columns),
        column_descriptions: vec![
            "Unique product id (primary key)",
            "Product name",
            "Category: 'Electronics', 'Home & Kitchen', 'Clothing', 'Sports & Outdoors', \
'Books', 'Beauty', 'Toys & Games' or 'Grocery'",
            "Brand (the publisher for books)",
            "Current list price in USD (order_items.unit_price is the price actually charged)",
        ],
    };
    (table, out)
}

struct OrderRow {
    customer: usize,
    day: i64,
}

fn order_day_weights(start: i64, end: i64) -> Cumulative {
    let bf: Vec<i64> = (2023..=2025).map(black_friday).collect();
    Cumulative::new((start..=end).map(|day| {
        let (_, m, d) = civil_from_days(day);
        let years = (day - start) as f64 / 365.25;
        let mut w = (1.0 + 0.18 * years)
            * ORDER_MONTH_FACTOR[(m - 1) as usize]
            * WEEKDAY_FACTOR[weekday(day) as usize];
        for &b in &bf {
            match day - b {
                0 => w *= 3.0,
                1 | 2 => w *= 2.0,
                3 => w *= 2.5, // Cyber Monday
                -7..=-1 => w *= 1.3,
                _ => {}
            }
        }
        match (m, d) {
            (7, 11 | 12) => w *= 1.5, // mid-summer sale
            (12, 24) => w *= 0.7,
            (12, 25) => w *= 0.35,
            (1, 1) => w *= 0.5,
            _ => {}
        }
        w
    }))
}

fn orders(customers: &[Customer]) -> (DemoTable, Vec<OrderRow>) {
    let mut rng = stream(3);
    let start = days_from_civil(2023, 1, 1);
    let end = days_from_civil(2025, 12, 31);
    let days = order_day_weights(start, end);

    let mut order_days: Vec<i64> = (0..ORDERS)
        .map(|_| start + days.sample(&mut rng) as i64)
        .collect();
    // Order ids follow time, as a sequence would.
    order_days.sort_unstable();

    // A few loyal customers place many orders; businesses order more often.
    let propensity = Cumulative::new(customers.iter().map(|c| {
        let base = 1.0 / (0.15 + rng.next_f64());
        base * [1.0, 1.6, 2.5][c.segment]
    }));
    let signups: Vec<i64> = customers.iter().map(|c| c.signup).collect();

    let mut ids = Vec::with_capacity(ORDERS);
    let mut customer_ids = Vec::with_capacity(ORDERS);
    let mut dates = Vec::with_capacity(ORDERS);
    let mut statuses = Vec::with_capacity(ORDERS);
    let mut channels = Vec::with_capacity(ORDERS);
    let mut rows = Vec::with_capacity(ORDERS);

    for (i, day) in order_days.into_iter().enumerate() {
        // Only customers who had signed up by then can order.
        let eligible = signups.partition_point(|s| *s <= day).max(1);
        let customer = propensity.sample_prefix(&mut rng, eligible);
        let age = end - day;
        let status = if age < 3 {
            ["pending", "shipped", "cancelled"][rng.weighted(&[0.55, 0.35, 0.10])]
        } else if age < 10 {
            ["shipped", "completed", "pending", "cancelled"]
                [rng.weighted(&[0.55, 0.30, 0.07, 0.08])]
        } else {
            ["completed", "cancelled", "returned", "shipped", "pending"]
                [rng.weighted(&[0.86, 0.06, 0.055, 0.015, 0.01])]
        };
        let year = (civil_from_days(day).0 - 2023) as f64;
        let channel = if customers[customer].segment == 2 {
            ["web", "mobile", "store"][rng.weighted(&[0.80, 0.05, 0.15])]
        } else {
            // Mobile keeps gaining share from the web shop and the stores.
            ["web", "mobile", "store"]
                [rng.weighted(&[0.52 - 0.04 * year, 0.28 + 0.06 * year, 0.20 - 0.02 * year])]
        };
        ids.push(i as i64 + 1);
        customer_ids.push(customer as i64 + 1);
        dates.push(to_date32(day));
        statuses.push(status);
        channels.push(channel);
        rows.push(OrderRow { customer, day });
    }

    let schema = schema(&[
        ("order_id", DataType::Int64),
        ("customer_id", DataType::Int64),
        ("order_date", DataType::Date32),
        ("status", DataType::Utf8),
        ("channel", DataType::Utf8),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int64Array::from(customer_ids)),
        Arc::new(Date32Array::from(dates)),
        Arc::new(StringArray::from(statuses)),
        Arc::new(StringArray::from(channels)),
    ];
    let table = DemoTable {
        name: "orders",
        description: "One row per order (100,000), placed 2023-01-01 to 2025-12-31; order_id \
follows time. Order lines and amounts are in order_items (join on order_id).",
        batch: batch(schema, columns),
        column_descriptions: vec![
            "Unique order id (primary key), increasing with order_date",
            "The customer who placed the order (customers.customer_id)",
            "Date the order was placed",
            "Order status: 'completed', 'shipped', 'pending', 'cancelled' or 'returned'",
            "Sales channel: 'web', 'mobile' or 'store'",
        ],
    };
    (table, rows)
}

fn order_items(customers: &[Customer], products: &[Product], orders: &[OrderRow]) -> DemoTable {
    let mut rng = stream(4);

    // Zipf-like popularity within each category (random bestseller), cheaper items selling
    // more, and a demand table per calendar month for seasonality.
    let mut rank_in_category = vec![0usize; products.len()];
    for c in 0..CATEGORIES.len() {
        let mut members: Vec<usize> = (0..products.len())
            .filter(|&p| products[p].category == c)
            .collect();
        rng.shuffle(&mut members);
        for (rank, p) in members.into_iter().enumerate() {
            rank_in_category[p] = rank;
        }
    }
    let base: Vec<f64> = products
        .iter()
        .zip(&rank_in_category)
        .map(|(p, &rank)| {
            CATEGORIES[p.category].demand
                / (rank as f64 + 2.0)
                / (1.0 + dollars(p.price_cents) / 150.0)
        })
        .collect();
    let by_month: Vec<Cumulative> = (0..12)
        .map(|m| {
            Cumulative::new(
                products
                    .iter()
                    .zip(&base)
                    .map(|(p, w)| w * CATEGORIES[p.category].season[m]),
            )
        })
        .collect();
    let bf: Vec<i64> = (2023..=2025).map(black_friday).collect();

    let capacity = orders.len() * 3 + orders.len() / 10;
    let mut order_ids = Vec::with_capacity(capacity);
    let mut line_nos = Vec::with_capacity(capacity);
    let mut product_ids = Vec::with_capacity(capacity);
    let mut quantities = Vec::with_capacity(capacity);
    let mut prices = Vec::with_capacity(capacity);
    let mut discounts = Vec::with_capacity(capacity);
    let mut chosen: Vec<usize> = Vec::with_capacity(5);

    for (i, order) in orders.iter().enumerate() {
        let segment = customers[order.customer].segment;
        let (year, month, _) = civil_from_days(order.day);
        let sale_week = bf.iter().any(|b| (-7..=3).contains(&(order.day - b)));
        let lines = 1 + if segment == 0 {
            rng.weighted(&[0.20, 0.25, 0.23, 0.17, 0.15])
        } else {
            rng.weighted(&[0.10, 0.20, 0.25, 0.25, 0.20])
        };
        // Prices rose over the three years; list prices are today's.
        let inflation = [0.92, 0.96, 1.0][(year - 2023).clamp(0, 2) as usize];
        let table = &by_month[(month - 1) as usize];

        chosen.clear();
        for line in 0..lines {
            let mut p = table.sample(&mut rng);
            for _ in 0..5 {
                if !chosen.contains(&p) {
                    break;
                }
                p = table.sample(&mut rng);
            }
            if chosen.contains(&p) {
                continue;
            }
            chosen.push(p);

            let quantity: i64 = match segment {
                0 => [1, 2, 3, 4, 5][rng.weighted(&[0.72, 0.18, 0.06, 0.025, 0.015])],
                1 => [1, 2, 3, 4, 5, 10][rng.weighted(&[0.35, 0.25, 0.15, 0.10, 0.10, 0.05])],
                _ => [2, 5, 10, 20][rng.weighted(&[0.35, 0.35, 0.20, 0.10])],
            };
            let unit_cents = cents(dollars(products[p].price_cents) * inflation);
            let discount = match segment {
                2 if rng.chance(0.7) => 0.10,
                1 if rng.chance(0.4) => 0.05,
                _ => {
                    let p_discount = if sale_week {
                        0.6
                    } else if month == 12 {
                        0.3
                    } else {
                        0.15
                    };
                    if rng.chance(p_discount) {
                        let weights: &[f64] = if sale_week {
                            &[0.05, 0.15, 0.25, 0.25, 0.20, 0.10]
                        } else {
                            &[0.25, 0.30, 0.20, 0.12, 0.08, 0.05]
                        };
                        DISCOUNTS[rng.weighted(weights)]
                    } else {
                        0.0
                    }
                }
            };
            order_ids.push(i as i64 + 1);
            line_nos.push(line as i64 + 1);
            product_ids.push(p as i64 + 1);
            quantities.push(quantity);
            prices.push(dollars(unit_cents));
            discounts.push(discount);
        }
    }
    // Lines whose product draw collided were skipped: renumber so line_no stays 1..n.
    let mut expected = 1;
    let mut previous_order = 0;
    for (order, line) in order_ids.iter().zip(line_nos.iter_mut()) {
        if *order != previous_order {
            previous_order = *order;
            expected = 1;
        }
        *line = expected;
        expected += 1;
    }

    let schema = schema(&[
        ("order_id", DataType::Int64),
        ("line_no", DataType::Int64),
        ("product_id", DataType::Int64),
        ("quantity", DataType::Int64),
        ("unit_price", DataType::Float64),
        ("discount", DataType::Float64),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(order_ids)),
        Arc::new(Int64Array::from(line_nos)),
        Arc::new(Int64Array::from(product_ids)),
        Arc::new(Int64Array::from(quantities)),
        Arc::new(Float64Array::from(prices)),
        Arc::new(Float64Array::from(discounts)),
    ];
    DemoTable {
        name: "order_items",
        description: "Order lines (1 to 5 per order, about 300,000). Line revenue is quantity \
* unit_price * (1 - discount). Join orders on order_id and products on product_id.",
        batch: batch(schema, columns),
        column_descriptions: vec![
            "The order (orders.order_id)",
            "Line number within the order, starting at 1",
            "The product sold (products.product_id)",
            "Units sold on this line",
            "Price per unit actually charged in USD, before discount",
            "Discount as a fraction of the line amount (0 to 0.30), e.g. 0.15 = 15% off",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    #[test]
    fn calendar_helpers_match_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for day in (-800_000..800_000).step_by(997) {
            let date = epoch + chrono::Duration::days(day);
            assert_eq!(
                days_from_civil(
                    i64::from(date.year()),
                    i64::from(date.month()),
                    i64::from(date.day())
                ),
                day
            );
            let (y, m, d) = civil_from_days(day);
            assert_eq!(
                (y, m, d),
                (
                    i64::from(date.year()),
                    i64::from(date.month()),
                    i64::from(date.day())
                )
            );
            assert_eq!(
                weekday(day),
                i64::from(date.weekday().num_days_from_sunday())
            );
        }
    }

    #[test]
    fn black_friday_dates() {
        assert_eq!(civil_from_days(black_friday(2023)), (2023, 11, 24));
        assert_eq!(civil_from_days(black_friday(2024)), (2024, 11, 29));
        assert_eq!(civil_from_days(black_friday(2025)), (2025, 11, 28));
    }
}
