//! `recommend-batch`'s output, and reading interaction files.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use dermis_recommend::batch::write_recommendations;
use dermis_recommend::model::Fit;
use dermis_recommend::popularity::PopularityConfig;
use dermis_recommend::{ModelKind, RecommendError, Settings, SignalWeights, data};
use flate2::Compression;
use flate2::write::GzEncoder;

#[test]
fn batch_output_is_user_rank_product_without_owned_products() {
    let data = common::clustered(40, 20, 2, 4);
    let (model, _) = Settings::default().fit(ModelKind::ItemKnn, &data).unwrap();
    let popularity = PopularityConfig.fit(&data).unwrap();
    let users = vec!["u3".to_owned(), "stranger".to_owned(), "u0".to_owned()];
    let mut out = Vec::new();
    let summary = write_recommendations(model.as_ref(), Some(&popularity), &data, &users, 3, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "user_id,rank,product_id");
    assert_eq!(lines.len(), 1 + 9, "{text}");
    assert_eq!((summary.users, summary.unknown_users, summary.non_personal, summary.rows), (3, 1, 1, 9));
    for (n, user) in users.iter().enumerate() {
        let rows: Vec<Vec<&str>> = lines[1 + 3 * n..4 + 3 * n].iter().map(|l| l.split(',').collect()).collect();
        for (rank, row) in rows.iter().enumerate() {
            assert_eq!(row[0], user);
            assert_eq!(row[1], (rank + 1).to_string());
            // Product ids as in the input.
            let item = data.items().get(row[2]).unwrap_or_else(|| panic!("{} is not an input id", row[2]));
            if let Some(u) = data.users().get(user) {
                assert!(!data.history(u).items.contains(&item), "{user} owns {}", row[2]);
            }
        }
    }
    // The stranger gets the most popular products.
    let top: Vec<&str> = popularity.recommend_ids(&data, 3);
    let stranger: Vec<&str> = lines[4..7].iter().map(|l| l.rsplit(',').next().unwrap()).collect();
    assert_eq!(stranger, top);
}

/// The most popular product ids (a helper over the public API).
trait PopularIds {
    fn recommend_ids<'a>(&self, data: &'a dermis_recommend::Interactions, k: usize) -> Vec<&'a str>;
}

impl PopularIds for dermis_recommend::popularity::Popularity {
    fn recommend_ids<'a>(&self, data: &'a dermis_recommend::Interactions, k: usize) -> Vec<&'a str> {
        use dermis_recommend::Model;
        self.recommend(dermis_recommend::History::EMPTY, k, None).iter().map(|s| data.items().id(s.item)).collect()
    }
}

#[test]
fn a_catalog_restricts_the_batch_to_its_products() {
    let data = common::clustered(40, 20, 2, 4);
    let (model, _) = Settings::default().fit(ModelKind::Popularity, &data).unwrap();
    let catalog: HashSet<String> = ["p1", "p2", "p3", "p15"].into_iter().map(String::from).collect();
    let mut out = Vec::new();
    write_recommendations(
        model.as_ref(),
        None,
        &data,
        &["u0".to_owned(), "u1".to_owned()],
        10,
        Some(&catalog),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let products: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
    assert!(!products.is_empty());
    assert!(products.iter().all(|p| catalog.contains(*p)), "{text}");
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    if name.ends_with(".gz") {
        let mut e = GzEncoder::new(std::fs::File::create(&path).unwrap(), Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
    } else {
        std::fs::write(&path, text).unwrap();
    }
    path
}

#[test]
fn interactions_load_from_several_csv_and_gz_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir, "a.csv", "author_id,product_id,rating\n10000770719,P1,5.0\n2,P2,4.666\n");
    let b = write(
        &dir,
        "b.csv.gz",
        "rating,product_id,author_id,submission_time\n1,P1,2,2023-01-02\n5,P3,10000770719,2023-01-03\n",
    );
    let data = data::load_interactions(&[a, b], &SignalWeights::default()).unwrap();
    assert_eq!((data.n_users(), data.n_items(), data.nnz()), (2, 3, 4));
    // Ids stay text: no float rounding of long author ids.
    let u = data.users().get("10000770719").unwrap();
    let items: Vec<&str> = data.history(u).items.iter().map(|&i| data.items().id(i)).collect();
    assert_eq!(items, ["P1", "P3"]);
    // Review weights by star: one star counts 0.
    let w = SignalWeights::default().with_review_weights("0,0.5,1,1,1").unwrap();
    let a = write(&dir, "c.csv", "author_id,product_id,rating\nx,P1,1\nx,P2,4.6\n");
    let data = data::load_interactions(&[a], &w).unwrap();
    assert_eq!(data.history(0).weights, [0.0, 1.0]);
    assert!(SignalWeights::default().with_review_weights("1,2").is_err());
}

#[test]
fn bad_files_name_the_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let no_rating = write(&dir, "n.csv", "author_id,product_id\n1,P1\n");
    let e = data::load_interactions(&[no_rating], &SignalWeights::default()).unwrap_err();
    assert!(matches!(e, RecommendError::MissingColumn { column: "rating", .. }), "{e}");
    let bad = write(&dir, "b.csv", "author_id,product_id,rating\n1,P1,5\n1,P2,great\n");
    let e = data::load_interactions(&[bad], &SignalWeights::default()).unwrap_err();
    assert!(matches!(e, RecommendError::BadRow { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("great"), "{e}");
    let empty = write(&dir, "e.csv", "author_id,product_id,rating\n");
    assert!(matches!(
        data::load_interactions(&[empty], &SignalWeights::default()),
        Err(RecommendError::NoInteractions)
    ));
    let missing = dir.path().join("missing.csv");
    assert!(matches!(data::load_interactions(&[missing], &SignalWeights::default()), Err(RecommendError::Io { .. })));
}

#[test]
fn user_lists_and_catalogs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let users = write(&dir, "users.txt", "author_id\n 1 \n\n2\n");
    assert_eq!(data::read_user_list(&users).unwrap(), ["1", "2"]);
    let catalog =
        write(&dir, "product_info.csv.gz", "product_id,product_name,brand_name\nP1,\"Cream, rich\",X\nP2,Toner,Y\n");
    assert_eq!(data::read_catalog_ids(&catalog).unwrap(), ["P1", "P2"]);
}

#[test]
fn the_shared_split_loads_with_its_documented_size() {
    let dir = PathBuf::from(
        "../../../shared/data/sephora-products-and-skincare-reviews/derived/ishitasingh23-skincare-10core-splits",
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    if !dir.exists() {
        assert!(std::env::var_os("DERMIS_REQUIRE_SHARED_DATA").is_none(), "{} is missing", dir.display());
        eprintln!("skipped: {} is absent (set DERMIS_REQUIRE_SHARED_DATA to require it)", dir.display());
        return;
    }
    let train = data::load_interactions(&[dir.join("train_df.csv.gz")], &SignalWeights::default()).unwrap();
    // SOURCE.md: 121,096 rows, 9,246 users and 1,890 products, no repeated pair.
    assert_eq!((train.nnz(), train.n_users(), train.n_items()), (121_096, 9_246, 1_890));
}
