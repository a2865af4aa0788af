//! The parts of template.yaml the local stack reads: its sections, CloudFormation's intrinsics
//! (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, short or long form) resolved against the
//! parameters' defaults, pseudo parameters and what was created, and its conditions.

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;

/// Moto's (and the AWS docs') default account (`AWS::AccountId`).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// The parts of the template we read.
#[derive(Debug)]
pub(super) struct Template {
    pub(super) parameters: Mapping,
    pub(super) conditions: Mapping,
    /// (logical id, resource definition) in template order.
    pub(super) resources: Vec<(String, Value)>,
}

impl Template {
    pub(super) fn parse(root: &Value) -> Result<Self, String> {
        let section = |name: &str| -> Result<Mapping, String> {
            match root.get(name) {
                None | Some(Value::Null) => Ok(Mapping::new()),
                Some(Value::Mapping(m)) => Ok(m.clone()),
                Some(_) => Err(format!("{name} is not a mapping")),
            }
        };
        let resources = section("Resources")?
            .into_iter()
            .map(|(k, v)| match k {
                Value::String(id) => Ok((id, v)),
                other => Err(format!("resource id {other:?} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if resources.is_empty() {
            return Err("the template declares no Resources".into());
        }
        Ok(Self {
            parameters: section("Parameters")?,
            conditions: section("Conditions")?,
            resources,
        })
    }

    pub(super) fn resource(&self, id: &str) -> Option<&Value> {
        self.resources.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    pub(super) fn parameter_default(&self, name: &str) -> Option<&Value> {
        self.parameters.get(name)?.get("Default")
    }
}

/// A created resource: what `!Ref` gives and its `!GetAtt` attributes.
#[derive(Debug, Clone)]
pub(super) struct Created {
    pub(super) reference: String,
    pub(super) attributes: BTreeMap<&'static str, String>,
}

/// The values intrinsics resolve against.
pub(super) struct Context {
    pub(super) stack_name: String,
    pub(super) region: String,
    pub(super) created: BTreeMap<String, Created>,
}

/// An intrinsic function call, from `!Tag arg` or `{Fn::Tag: arg}` / `{Ref: arg}`.
pub(super) fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = if name == "Ref" || name == "Condition" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            Some((name, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_owned(), arg))
        }
        _ => None,
    }
}

/// A scalar as the string CloudFormation would pass on.
pub(super) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Context {
    pub(super) fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => LOCAL_ACCOUNT_ID.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{LOCAL_ACCOUNT_ID}:stack/{}/local",
                self.region, self.stack_name
            ),
            _ => return None,
        })
    }

    pub(super) fn reference(&self, template: &Template, name: &str) -> Result<Value, String> {
        if let Some(v) = self.pseudo(name) {
            return Ok(Value::String(v));
        }
        if template.parameters.contains_key(name) {
            return template
                .parameter_default(name)
                .cloned()
                .ok_or_else(|| format!("parameter {name} has no Default"));
        }
        match self.created.get(name) {
            Some(c) => Ok(Value::String(c.reference.clone())),
            None => Err(format!(
                "!Ref {name}: not a parameter nor a resource created locally"
            )),
        }
    }

    pub(super) fn attribute(&self, id: &str, attr: &str) -> Result<String, String> {
        self.created
            .get(id)
            .and_then(|c| c.attributes.get(attr).cloned())
            .ok_or_else(|| format!("!GetAtt {id}.{attr}: not available locally"))
    }

    pub(super) fn sub(
        &self,
        template: &Template,
        text: &str,
        vars: &Mapping,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("!Sub {text:?}: unclosed ${{"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                let v = self.resolve(template, v)?;
                out.push_str(
                    &scalar_string(&v).ok_or_else(|| format!("!Sub ${{{name}}}: not a scalar"))?,
                );
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attr)?);
            } else {
                let v = self.reference(template, name)?;
                out.push_str(
                    &scalar_string(&v).ok_or_else(|| format!("!Sub ${{{name}}}: not a scalar"))?,
                );
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` with every supported intrinsic replaced by its value.
    pub(super) fn resolve(&self, template: &Template, v: &Value) -> Result<Value, String> {
        if let Some((name, arg)) = intrinsic(v)
            && name != "Condition"
        {
            return match name.as_str() {
                "Ref" => {
                    let target = arg.as_str().ok_or("!Ref needs a name")?;
                    self.reference(template, target)
                }
                "Fn::GetAtt" => {
                    let (id, attr) = match arg {
                        Value::String(s) => {
                            s.split_once('.').ok_or("!GetAtt needs Id.Attribute")?
                        }
                        Value::Sequence(seq) if seq.len() == 2 => (
                            seq[0].as_str().ok_or("!GetAtt id is not a string")?,
                            seq[1].as_str().ok_or("!GetAtt attribute is not a string")?,
                        ),
                        _ => return Err("!GetAtt needs Id.Attribute".into()),
                    };
                    self.attribute(id, attr).map(Value::String)
                }
                "Fn::Sub" => match arg {
                    Value::String(s) => self.sub(template, s, &Mapping::new()).map(Value::String),
                    Value::Sequence(seq) if seq.len() == 2 => {
                        let text = seq[0].as_str().ok_or("!Sub text is not a string")?;
                        let vars = seq[1]
                            .as_mapping()
                            .ok_or("!Sub variables are not a mapping")?;
                        self.sub(template, text, vars).map(Value::String)
                    }
                    _ => Err("!Sub needs a string or [string, variables]".into()),
                },
                "Fn::Join" => {
                    let seq = arg
                        .as_sequence()
                        .filter(|s| s.len() == 2)
                        .ok_or("!Join needs [sep, list]")?;
                    let sep = seq[0].as_str().ok_or("!Join separator is not a string")?;
                    let list = self.resolve(template, &seq[1])?;
                    let parts = list
                        .as_sequence()
                        .ok_or("!Join list is not a list")?
                        .iter()
                        .map(|p| scalar_string(p).ok_or("!Join item is not a scalar"))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Value::String(parts.join(sep)))
                }
                other => Err(format!("intrinsic {other} is not supported locally")),
            };
        }
        match v {
            Value::Sequence(seq) => seq
                .iter()
                .map(|x| self.resolve(template, x))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Sequence),
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.resolve(template, x)?);
                }
                Ok(Value::Mapping(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluate a condition (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`) with the
    /// parameters' defaults.
    pub(super) fn condition(
        &self,
        template: &Template,
        v: &Value,
        depth: u8,
    ) -> Result<bool, String> {
        if depth > 20 {
            return Err("conditions nest too deeply".into());
        }
        if let Value::Bool(b) = v {
            return Ok(*b);
        }
        let (name, arg) = intrinsic(v).ok_or("a condition must be an intrinsic function")?;
        let list = || {
            arg.as_sequence()
                .ok_or_else(|| format!("{name} needs a list"))
        };
        match name.as_str() {
            "Condition" => {
                let id = arg.as_str().ok_or("Condition needs a name")?;
                self.named_condition(template, id, depth + 1)
            }
            "Fn::Equals" => {
                let l = list()?;
                if l.len() != 2 {
                    return Err("Fn::Equals needs two values".into());
                }
                let a = scalar_string(&self.resolve(template, &l[0])?);
                let b = scalar_string(&self.resolve(template, &l[1])?);
                Ok(a == b)
            }
            "Fn::Not" => {
                let l = list()?;
                let inner = l.first().ok_or("Fn::Not needs one condition")?;
                Ok(!self.condition(template, inner, depth + 1)?)
            }
            "Fn::And" | "Fn::Or" => {
                let values = list()?
                    .iter()
                    .map(|c| self.condition(template, c, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if name == "Fn::And" {
                    values.iter().all(|b| *b)
                } else {
                    values.iter().any(|b| *b)
                })
            }
            other => Err(format!("{other} is not a condition function")),
        }
    }

    pub(super) fn named_condition(
        &self,
        template: &Template,
        id: &str,
        depth: u8,
    ) -> Result<bool, String> {
        let v = template
            .conditions
            .get(id)
            .ok_or_else(|| format!("condition {id} is not declared"))?;
        self.condition(template, v, depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut created = BTreeMap::new();
        created.insert(
            "Q".to_owned(),
            Created {
                reference: "http://q".into(),
                attributes: BTreeMap::from([("Arn", "arn:aws:sqs:us-east-1:1:q".to_owned())]),
            },
        );
        Context {
            stack_name: "st".into(),
            region: "us-east-1".into(),
            created,
        }
    }

    fn template(yaml: &str) -> Template {
        Template::parse(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    const YAML: &str = r#"
Parameters:
  Rate: { Type: String, Default: rate(5 minutes) }
  Email: { Type: String, Default: "" }
  NoDefault: { Type: String }
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
  NoEmail: { "Fn::Equals": [{ Ref: Email }, ""] }
  Both: !And [!Condition HasEmail, !Condition NoEmail]
Resources:
  R: { Type: AWS::SNS::Topic }
"#;

    #[test]
    fn short_and_long_intrinsics_resolve() {
        let t = template(YAML);
        let c = ctx();
        let v = |s: &str| c.resolve(&t, &serde_yaml_ng::from_str(s).unwrap());
        assert_eq!(
            v("!Ref Rate").unwrap(),
            Value::String("rate(5 minutes)".into())
        );
        assert_eq!(v("{Ref: Q}").unwrap(), Value::String("http://q".into()));
        assert_eq!(
            v("!GetAtt Q.Arn").unwrap(),
            Value::String("arn:aws:sqs:us-east-1:1:q".into())
        );
        assert_eq!(
            v("{\"Fn::GetAtt\": [Q, Arn]}").unwrap(),
            Value::String("arn:aws:sqs:us-east-1:1:q".into())
        );
        assert_eq!(
            v("!Sub \"${AWS::StackName}-deadlines-${Q.Arn}-${!Literal}-${AWS::Region}\"").unwrap(),
            Value::String("st-deadlines-arn:aws:sqs:us-east-1:1:q-${Literal}-us-east-1".into())
        );
        assert_eq!(
            v("!Sub [\"${X}-${AWS::AccountId}\", {X: !Ref Rate}]").unwrap(),
            Value::String("rate(5 minutes)-123456789012".into())
        );
        assert_eq!(
            v("!Join [\"/\", [a, !Ref Q]]").unwrap(),
            Value::String("a/http://q".into())
        );
        let nested = v("{a: [1, !Ref Rate]}").unwrap();
        assert_eq!(nested["a"][1], Value::String("rate(5 minutes)".into()));
        assert!(v("!Ref NoDefault").unwrap_err().contains("NoDefault"));
        assert!(v("!Ref Missing").unwrap_err().contains("Missing"));
        assert!(v("!GetAtt Q.Nope").unwrap_err().contains("Q.Nope"));
        assert!(v("!If [c, a, b]").unwrap_err().contains("Fn::If"));
    }

    #[test]
    fn conditions_evaluate_with_parameter_defaults() {
        let t = template(YAML);
        let c = ctx();
        assert!(!c.named_condition(&t, "HasEmail", 0).unwrap());
        assert!(c.named_condition(&t, "NoEmail", 0).unwrap());
        assert!(!c.named_condition(&t, "Both", 0).unwrap());
        assert!(c.named_condition(&t, "Nope", 0).is_err());
    }

    #[test]
    fn templates_without_resources_are_refused() {
        let v: Value = serde_yaml_ng::from_str("Parameters: {}").unwrap();
        assert!(Template::parse(&v).unwrap_err().contains("no Resources"));
    }
}
