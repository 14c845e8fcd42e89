//! Where providers are and where callers come from, for the region-nearest strategy.
//!
//! A caller is located by what the edge knows (Cloudflare's `request.cf`: colo, country,
//! continent). A provider is located by its configured region (`eu-west`, `us-east`, …),
//! optional countries and colos. Distance is a small rank, nearest first: same colo, same
//! country, same continent, a neighbouring continent, anywhere.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A continent, as Cloudflare reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Continent {
    /// Africa.
    Af,
    /// Antarctica.
    An,
    /// Asia (including the Middle East).
    As,
    /// Europe.
    Eu,
    /// North America.
    Na,
    /// Oceania.
    Oc,
    /// South America.
    Sa,
}

impl Continent {
    /// Parses a two-letter continent code (`EU`, `NA`, …), case-insensitive.
    #[must_use]
    pub fn parse(s: &str) -> Option<Continent> {
        Some(match s.to_ascii_uppercase().as_str() {
            "AF" => Continent::Af,
            "AN" => Continent::An,
            "AS" => Continent::As,
            "EU" => Continent::Eu,
            "NA" => Continent::Na,
            "OC" => Continent::Oc,
            "SA" => Continent::Sa,
            _ => return None,
        })
    }

    /// Whether two continents are neighbours in network terms (well-connected by cable).
    #[must_use]
    pub fn neighbours(self, other: Continent) -> bool {
        use Continent::*;
        matches!(
            (self, other),
            (Na, Sa)
                | (Sa, Na)
                | (Na, Eu)
                | (Eu, Na)
                | (Eu, Af)
                | (Af, Eu)
                | (Eu, As)
                | (As, Eu)
                | (As, Oc)
                | (Oc, As)
                | (Na, As)
                | (As, Na)
        )
    }
}

/// A provider's location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// Configured name (for display).
    pub name: String,
    /// Continent, when known.
    pub continent: Option<Continent>,
    /// Countries, uppercase ISO alpha-2.
    pub countries: Vec<String>,
    /// Colos, uppercase IATA.
    pub colos: Vec<String>,
}

const PREFIXES: [(&str, Continent); 14] = [
    ("us", Continent::Na),
    ("ca", Continent::Na),
    ("na", Continent::Na),
    ("eu", Continent::Eu),
    ("uk", Continent::Eu),
    ("ap", Continent::As),
    ("as", Continent::As),
    ("me", Continent::As),
    ("in", Continent::As),
    ("sa", Continent::Sa),
    ("af", Continent::Af),
    ("oc", Continent::Oc),
    ("au", Continent::Oc),
    ("an", Continent::An),
];

impl Region {
    /// Parses a region name (`eu-west`, `us-east-1`, `ap-southeast`, `global` or empty) with
    /// optional countries and colos.
    ///
    /// # Errors
    /// A message listing the known region prefixes.
    pub fn parse(name: &str, countries: &[String], colos: &[String]) -> Result<Region, String> {
        let lower = name.to_ascii_lowercase();
        let prefix = lower.split(['-', '_']).next().unwrap_or("");
        let continent = if lower.is_empty() || lower == "global" {
            None
        } else {
            match PREFIXES.iter().find(|(p, _)| *p == prefix) {
                Some((_, c)) => Some(*c),
                None => {
                    return Err(format!(
                        "unknown region \"{name}\"; expected a name starting with one of us, ca, na, eu, uk, ap, as, me, in, sa, af, oc, au, an (e.g. eu-west), or global"
                    ))
                }
            }
        };
        for c in countries {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("`{c}` is not an ISO 3166-1 alpha-2 country code"));
            }
        }
        for c in colos {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("`{c}` is not a three-letter colo (IATA) code"));
            }
        }
        Ok(Region {
            name: name.into(),
            continent,
            countries: countries.iter().map(|c| c.to_ascii_uppercase()).collect(),
            colos: colos.iter().map(|c| c.to_ascii_uppercase()).collect(),
        })
    }

    /// Distance rank from `caller`: 0 same colo, 1 same country, 2 same continent,
    /// 3 neighbouring continent, 4 elsewhere or unknown.
    #[must_use]
    pub fn distance(&self, caller: &Locality) -> u8 {
        if let Some(colo) = &caller.colo {
            if self.colos.iter().any(|c| c.eq_ignore_ascii_case(colo)) {
                return 0;
            }
        }
        if let Some(country) = &caller.country {
            if self
                .countries
                .iter()
                .any(|c| c.eq_ignore_ascii_case(country))
            {
                return 1;
            }
        }
        match (self.continent, caller.continent) {
            (Some(a), Some(b)) if a == b => 2,
            (Some(a), Some(b)) if a.neighbours(b) => 3,
            _ => 4,
        }
    }
}

/// What the edge knows about where a caller is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    /// Colo (IATA code) that received the request.
    pub colo: Option<String>,
    /// Country, ISO alpha-2.
    pub country: Option<String>,
    /// Continent.
    pub continent: Option<Continent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(colo: &str, country: &str, cont: &str) -> Locality {
        Locality {
            colo: Some(colo.into()),
            country: Some(country.into()),
            continent: Continent::parse(cont),
        }
    }

    #[test]
    fn distance_ranks_outward() {
        let fra =
            Region::parse("eu-central", &[String::from("de")], &[String::from("fra")]).unwrap();
        assert_eq!(fra.distance(&loc("FRA", "DE", "EU")), 0);
        assert_eq!(fra.distance(&loc("MUC", "DE", "EU")), 1);
        assert_eq!(fra.distance(&loc("CDG", "FR", "EU")), 2);
        assert_eq!(fra.distance(&loc("IAD", "US", "NA")), 3);
        assert_eq!(fra.distance(&loc("SYD", "AU", "OC")), 4);
        assert_eq!(fra.distance(&Locality::default()), 4);
    }

    #[test]
    fn parse_rejects_unknown_regions_and_codes() {
        assert!(Region::parse("mars-1", &[], &[]).is_err());
        assert!(Region::parse("eu", &[String::from("DEU")], &[]).is_err());
        assert!(Region::parse("eu", &[], &[String::from("FRAX")]).is_err());
        assert_eq!(Region::parse("global", &[], &[]).unwrap().continent, None);
        assert_eq!(
            Region::parse("us-east-1", &[], &[]).unwrap().continent,
            Some(Continent::Na)
        );
    }
}
