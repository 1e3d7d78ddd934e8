//! What a recipe from a base hands its stages besides the settings: the data recipe of stage 3
//! (the paper's mixture or the English-only control) and the corpus the Arabic pieces of stage 2
//! are learned from.
use std::path::Path;

use super::config::BaseRecipe;
use crate::error::{RecipeError, Result};

impl BaseRecipe {
    /// The data recipe of stage 3 (TOML) with `tokenizer`: the paper's mixture, or English only
    /// (`english_only`: the control, `[data]`'s English sources with P(en) = 1). Checked by
    /// `allam_data::Recipe`'s own parser.
    pub fn data_recipe(&self, tokenizer: &Path, english_only: bool) -> std::result::Result<String, String> {
        let d = &self.data;
        let mut table = toml::Table::new();
        // Absolute paths: the data recipe is written into the run folder, not beside this file.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        table.insert(
            "tokenizer".into(),
            absolute(tokenizer).display().to_string().into(),
        );
        table.insert("seq_len".into(), (self.continued.seq_len as i64).into());
        table.insert("seed".into(), (self.seed as i64).into());
        if let Some(eos) = &d.eos_token {
            table.insert("eos_token".into(), eos.clone().into());
        }
        for (key, value) in [("add_bos", d.add_bos), ("split_documents", d.split_documents)] {
            if let Some(v) = value {
                table.insert(key.into(), v.into());
            }
        }
        let languages: toml::Table = if english_only {
            [("en".to_string(), toml::Value::from(1.0))].into_iter().collect()
        } else {
            d.languages
                .iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect()
        };
        table.insert("languages".into(), languages.into());
        if let Some(clean) = &d.clean {
            table.insert("clean".into(), clean.clone().into());
        }
        let sources: Vec<toml::Value> = d
            .sources
            .iter()
            .filter(|s| !english_only || s.get("language").and_then(toml::Value::as_str) == Some("en"))
            .map(|s| {
                let mut s = s.clone();
                if let Some(toml::Value::Array(paths)) = s.get_mut("paths") {
                    for p in paths.iter_mut() {
                        if let toml::Value::String(text) = p {
                            *text = absolute(Path::new(text.as_str())).display().to_string();
                        }
                    }
                }
                s.into()
            })
            .collect();
        table.insert("sources".into(), sources.into());
        let text = toml::to_string(&table).map_err(|e| format!("[data]: {e}"))?;
        allam_data::Recipe::parse(&text, Path::new("[data]")).map_err(|e| e.to_string())?;
        Ok(text)
    }

    /// The files the Arabic pieces are learned from, and their field: `[expansion] corpus`, else
    /// the files of the `ar` sources of `[data]`.
    pub fn expansion_corpus(&self) -> Result<allam_tokenizer::Corpus> {
        let e = &self.expansion;
        if !e.corpus.is_empty() {
            return Ok(allam_tokenizer::Corpus::new(e.corpus.clone(), &e.text_field));
        }
        let recipe = allam_data::Recipe::parse(
            &self
                .data_recipe(Path::new("tokenizer.json"), false)
                .map_err(RecipeError::Config)?,
            Path::new("[data]"),
        )
        .map_err(|e| RecipeError::Config(e.to_string()))?;
        let arabic: Vec<_> = recipe.sources.iter().filter(|s| s.language == "ar").collect();
        let fields: std::collections::BTreeSet<&str> = arabic.iter().map(|s| s.text_field.as_str()).collect();
        if arabic.is_empty() || fields.len() > 1 {
            return Err(RecipeError::Config(format!(
                "[expansion]: {}; name the files to learn Arabic pieces from with corpus = [...] and text_field",
                if arabic.is_empty() {
                    "no [[data.sources]] has language = \"ar\"".to_string()
                } else {
                    format!("the Arabic sources use different text fields ({fields:?})")
                }
            )));
        }
        let mut files = Vec::new();
        for source in &arabic {
            files.extend(source.files().map_err(|e| RecipeError::Config(e.to_string()))?);
        }
        let field = fields.into_iter().next().unwrap_or("text");
        Ok(allam_tokenizer::Corpus::new(files, field))
    }
}
