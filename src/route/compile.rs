//! Compiling one rule: SQL text -> DataFusion logical plan (against the
//! enriched source schema) -> type-coerced expressions -> physical
//! expressions, once. Owns the refusal of anything that is not a plain
//! projection and filter over the source rows; every error carries the
//! rule file's line and column, found by `rule_errors.rs`.

use super::rule_errors::{
    end_of, find_word, plan_error, pos_in_message, refuse, second_select, strip_datafusion_prefix,
};
use super::rule_file::{self, Pos};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::TreeNode;
use datafusion_common::{DFSchema, DataFusionError, ScalarValue, TableReference};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::utils::split_conjunction;
use datafusion_expr::{
    AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, Operator, ScalarUDF, TableSource, WindowUDF,
};
use datafusion_optimizer::analyzer::AnalyzerRule;
use datafusion_optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::ast::{Spanned, Statement};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A rule that cannot be used: file, position and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.pos, self.message)
    }
}

impl std::error::Error for RuleError {}

/// A rule compiled once, evaluated per batch.
#[derive(Debug)]
pub struct CompiledRule {
    pub table: String,
    pub file: PathBuf,
    pub sql: String,
    /// Rows pass when this is true (no WHERE: every row).
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    /// One expression per output column.
    pub projections: Vec<Arc<dyn PhysicalExpr>>,
    /// Every output column, partition columns included.
    pub output_schema: SchemaRef,
    /// Output columns that are partition keys, in PARTITIONED BY order.
    pub partition_idx: Vec<usize>,
    pub partition_columns: Vec<String>,
    /// Output columns written into data files (Hive keeps keys in paths).
    pub data_idx: Vec<usize>,
    pub data_schema: SchemaRef,
    /// `column = 'literal'` and `column IN ('a', 'b')` conjuncts of the WHERE
    /// clause: (column, values). A row can only pass if its value is listed.
    pub equalities: Vec<(String, Vec<String>)>,
    /// Every conjunct of the WHERE clause is one of `equalities`: a row
    /// passes exactly when each pinned column holds one of its values.
    pub pins_only: bool,
    /// Source columns the rule reads.
    pub reads: Vec<String>,
    /// Source columns its WHERE reads (a subset of `reads`).
    pub predicate_reads: Vec<String>,
    /// Source columns its SELECT reads (a subset of `reads`).
    pub projection_reads: Vec<String>,
    /// The type-coerced logical plan (for `sluice rules explain`).
    pub plan: LogicalPlan,
    /// The file says `-- sluice: allow_schema_change`.
    pub allow_schema_change: bool,
    /// The file says `-- sluice: max_file_age = <duration>`.
    pub max_file_age: Option<std::time::Duration>,
}

/// The functions rules may call: DataFusion's scalar functions and the `udf` crate.
pub struct Functions {
    scalars: HashMap<String, Arc<ScalarUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    options: ConfigOptions,
}

impl Default for Functions {
    fn default() -> Self {
        let mut scalars = HashMap::new();
        let all = datafusion_functions::all_default_functions()
            .into_iter()
            .chain(sluice_udf::all().into_iter().map(Arc::new));
        for f in all {
            for alias in f.aliases() {
                scalars.insert(alias.to_string(), f.clone());
            }
            scalars.insert(f.name().to_string(), f);
        }
        super::bounds::wrap(&mut scalars);
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
        ];
        Functions {
            scalars,
            planners,
            options: ConfigOptions::default(),
        }
    }
}

impl Functions {
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.scalars.keys().cloned().collect();
        v.sort();
        v
    }
}

struct Provider<'a> {
    source_name: &'a str,
    source: Arc<dyn TableSource>,
    functions: &'a Functions,
}

impl ContextProvider for Provider<'_> {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        if name.table() == self.source_name && name.schema().is_none() {
            Ok(self.source.clone())
        } else {
            Err(DataFusionError::Plan(format!(
                "rules may only read the source table {}; {} is not available",
                self.source_name, name
            )))
        }
    }
    fn get_table_function_source(
        &self,
        name: &str,
        _args: Vec<Expr>,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        Err(DataFusionError::Plan(format!(
            "table function {name}(...) is not allowed: rules may only read the source table {}",
            self.source_name
        )))
    }
    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.functions.planners
    }
    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.scalars.get(name).cloned()
    }
    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }
    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }
    fn get_variable_type(&self, _names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.functions.options
    }
    fn udf_names(&self) -> Vec<String> {
        self.functions.names()
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        vec![]
    }
    fn udaf_names(&self) -> Vec<String> {
        vec![]
    }
    fn udwf_names(&self) -> Vec<String> {
        vec![]
    }
}

/// Compiles a rule file's text against the enriched source schema.
pub fn compile(
    file: &Path,
    text: &str,
    source_name: &str,
    schema: &SchemaRef,
    functions: &Functions,
) -> Result<CompiledRule, RuleError> {
    let err = |pos: Pos, message: String| RuleError {
        file: file.to_path_buf(),
        pos,
        message,
    };
    let header = rule_file::parse_header(text).map_err(|e| err(e.pos, e.message))?;
    let sql = header.select_sql.as_str();
    let start = find_word(sql, "select").unwrap_or(Pos { line: 1, column: 1 });

    let mut statements = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let m = e.to_string();
            let pos = pos_in_message(&m).unwrap_or_else(|| {
                if m.contains("found: EOF") {
                    end_of(sql)
                } else {
                    start
                }
            });
            let m = m.split(" at Line:").next().unwrap_or(&m).to_string();
            err(pos, strip_datafusion_prefix(&m))
        })?;
    if statements.len() != 1 {
        return Err(err(
            start,
            format!(
                "a rule holds exactly one SELECT; found {} statements",
                statements.len()
            ),
        ));
    }
    let stmt = statements.remove(0);
    if !matches!(stmt, Statement::Query(_)) {
        let s = stmt.span().start;
        let pos = if s.line > 0 {
            Pos {
                line: s.line,
                column: s.column,
            }
        } else {
            start
        };
        let kind = stmt
            .to_string()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_uppercase();
        return Err(err(
            pos,
            format!(
                "only SELECT ... FROM {source_name} [WHERE ...] is allowed after AS; {kind} statements are refused"
            ),
        ));
    }

    let source = Arc::new(LogicalTableSource::new(schema.clone()));
    let provider = Provider {
        source_name,
        source,
        functions,
    };
    let options = ParserOptions {
        collect_spans: true,
        ..ParserOptions::default()
    };
    let plan = SqlToRel::new_with_options(&provider, options)
        .sql_statement_to_plan(stmt)
        .map_err(|e| plan_error(e, sql, start, &err))?;
    let plan = TypeCoercion::new()
        .analyze(plan, &functions.options)
        .map_err(|e| plan_error(e, sql, start, &err))?;

    let (proj_exprs, out_dfschema, predicate, scan_schema) = shape(&plan, sql, start, &err)?;
    super::bounds::check_constants(proj_exprs.iter().chain(predicate.iter()), sql)
        .map_err(|(pos, m)| err(pos, m))?;

    // Partition columns must be in the select list.
    let out_fields: Vec<Field> = out_dfschema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let names: Vec<&str> = out_fields.iter().map(|f| f.name().as_str()).collect();
    let mut partition_idx = Vec::new();
    for (col, pos) in &header.partition_by {
        match names.iter().position(|n| n == col) {
            Some(i) => {
                if partition_idx.contains(&i) {
                    return Err(err(*pos, format!("partition column {col} is listed twice")));
                }
                partition_idx.push(i)
            }
            None => {
                return Err(err(
                    *pos,
                    format!(
                        "partition column {col} is not in the select list; select it (columns: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let data_idx: Vec<usize> = (0..out_fields.len())
        .filter(|i| !partition_idx.contains(i))
        .collect();
    if data_idx.is_empty() {
        return Err(err(
            start,
            "the rule selects only partition columns; select at least one data column".into(),
        ));
    }
    for f in &out_fields {
        if !crate::config::is_identifier(f.name()) {
            return Err(err(
                start,
                format!(
                    "output column {:?} needs a name: add `AS some_name` after the expression",
                    f.name()
                ),
            ));
        }
    }

    let props = ExecutionProps::new();
    let phys = |e: &Expr| {
        datafusion_physical_expr::create_physical_expr(
            e,
            &scan_schema,
            &props,
            &datafusion_expr::physical_planning_context::PhysicalPlanningContext::default(),
        )
        .map_err(|e| plan_error(e, sql, start, &err))
    };
    let projections = proj_exprs.iter().map(phys).collect::<Result<Vec<_>, _>>()?;
    let predicate_phys = predicate.as_ref().map(phys).transpose()?;

    let (equalities, pins_only) = match &predicate {
        Some(p) => equality_conjuncts(p),
        None => (vec![], false),
    };
    let columns_of = |exprs: &mut dyn Iterator<Item = &Expr>| {
        let mut names: Vec<String> = Vec::new();
        for e in exprs {
            for c in e.column_refs() {
                if !names.contains(&c.name) {
                    names.push(c.name.clone());
                }
            }
        }
        names
    };
    let reads = columns_of(&mut proj_exprs.iter().chain(predicate.iter()));
    let predicate_reads = columns_of(&mut predicate.iter());
    let projection_reads = columns_of(&mut proj_exprs.iter());
    let output_schema = Arc::new(Schema::new(out_fields.clone()));
    let data_schema = Arc::new(Schema::new(
        data_idx
            .iter()
            .map(|&i| out_fields[i].clone())
            .collect::<Vec<_>>(),
    ));
    Ok(CompiledRule {
        table: header.table,
        file: file.to_path_buf(),
        sql: text.to_string(),
        predicate: predicate_phys,
        projections,
        output_schema,
        partition_idx,
        partition_columns: header.partition_by.into_iter().map(|(c, _)| c).collect(),
        data_idx,
        data_schema,
        equalities,
        pins_only,
        reads,
        predicate_reads,
        projection_reads,
        plan,
        allow_schema_change: header.allow_schema_change,
        max_file_age: header.max_file_age,
    })
}

/// The conjuncts of `predicate` that pin a column to string literals, and
/// whether they are all of its conjuncts.
fn equality_conjuncts(predicate: &Expr) -> (Vec<(String, Vec<String>)>, bool) {
    let lit = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(v)), _) => Some(v.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    let mut all = true;
    for c in split_conjunction(predicate) {
        let pin = match c {
            Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                match (b.left.as_ref(), b.right.as_ref()) {
                    (Expr::Column(col), other) | (other, Expr::Column(col)) => {
                        lit(other).map(|v| (col.name.clone(), vec![v]))
                    }
                    _ => None,
                }
            }
            Expr::InList(l) if !l.negated => match l.expr.as_ref() {
                Expr::Column(col) => l
                    .list
                    .iter()
                    .map(lit)
                    .collect::<Option<Vec<String>>>()
                    .map(|vals| (col.name.clone(), vals)),
                _ => None,
            },
            _ => None,
        };
        match pin {
            Some(p) => out.push(p),
            None => all = false,
        }
    }
    (out, all)
}

type Shape = (Vec<Expr>, Arc<DFSchema>, Option<Expr>, DFSchema);

/// Accepts only Projection -> [Filter] -> [SubqueryAlias] -> TableScan.
fn shape(
    plan: &LogicalPlan,
    sql: &str,
    start: Pos,
    err: &dyn Fn(Pos, String) -> RuleError,
) -> Result<Shape, RuleError> {
    let LogicalPlan::Projection(p) = plan else {
        return Err(refuse(plan, sql, start, err));
    };
    let mut input = p.input.as_ref();
    let mut predicate = None;
    if let LogicalPlan::Filter(f) = input {
        predicate = Some(f.predicate.clone());
        input = f.input.as_ref();
    }
    if let LogicalPlan::SubqueryAlias(a) = input {
        input = a.input.as_ref();
    }
    let LogicalPlan::TableScan(scan) = input else {
        return Err(refuse(input, sql, start, err));
    };
    for e in p.expr.iter().chain(predicate.iter()) {
        let mut has_subquery = false;
        let _ = e.apply(|x| {
            has_subquery |= matches!(
                x,
                Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
            );
            Ok(datafusion_common::tree_node::TreeNodeRecursion::Continue)
        });
        if has_subquery {
            return Err(err(
                find_word(sql, "select")
                    .map(|_| second_select(sql).unwrap_or(start))
                    .unwrap_or(start),
                "subqueries are not allowed: a rule reads only the row it is given".into(),
            ));
        }
    }
    // Expressions refer to the scan's (qualified) columns; after an alias the
    // filter/projection schema still resolves by name against the scan.
    let scan_schema = scan.projected_schema.as_ref().clone();
    let scan_schema = match plan_input_schema(p.input.as_ref()) {
        Some(s) => s,
        None => scan_schema,
    };
    Ok((p.expr.clone(), p.schema.clone(), predicate, scan_schema))
}

fn plan_input_schema(plan: &LogicalPlan) -> Option<DFSchema> {
    Some(plan.schema().as_ref().clone())
}
