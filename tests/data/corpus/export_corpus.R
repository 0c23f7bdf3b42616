# Export the robustness corpus of tests/frequentist/test_corpus.py: data sets as CSV and
# R's fits (glmer Laplace, glmer nAGQ = 25 where it applies, glmmTMB) as reference.json.
#
#   cd tests/data/corpus && Rscript export_corpus.R
#
# Run with R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5, MASS 7.3-58.2, mlmRev 1.0-8 (Debian
# bookworm packages); versions are recorded in reference.json. R is not a test dependency:
# the test reads only the CSV files and reference.json.
suppressMessages({
  library(lme4)
  library(glmmTMB)
  library(MASS)
  library(mlmRev)
  library(jsonlite)
})

# ---------------------------------------------------------------- data sets
put <- function(d, file) {
  write.csv(d, file, row.names = FALSE)
  # factor levels in R's order, so the Python side uses the same reference levels
  lv <- lapply(Filter(function(x) is.factor(x) && nlevels(x) <= 12, d), levels)
  list(file = file, levels = lv)
}
data_sets <- list()

data(cbpp, package = "lme4")
data_sets$cbpp <- put(cbpp, "cbpp.csv")

data(grouseticks, package = "lme4")
g <- grouseticks[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT")]
data_sets$grouseticks <- put(g, "grouseticks.csv")

data(Salamanders, package = "glmmTMB")
sal <- Salamanders[, c("site", "mined", "spp", "count", "cover")]
sal$site <- factor(as.character(sal$site))  # ordered factor -> plain factor
data_sets$salamanders <- put(sal, "salamanders.csv")

data(Owls, package = "glmmTMB")
owls <- Owls[, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime",
                 "SiblingNegotiation", "BroodSize")]
owls$logBroodSize <- log(owls$BroodSize)
data_sets$owls <- put(owls, "owls.csv")

bact <- MASS::bacteria
bact$yb <- as.integer(bact$y == "y")
bact$week2 <- as.integer(bact$week > 2)
bact <- bact[, c("yb", "trt", "week", "week2", "ID")]
data_sets$bacteria <- put(bact, "bacteria.csv")

ep <- MASS::epil
ep$obs <- factor(seq_len(nrow(ep)))
ep$subject <- factor(ep$subject)
ep$visit <- (ep$period - 2.5) / 5  # Breslow & Clayton (1993): -0.3, -0.1, 0.1, 0.3
ep <- ep[, c("y", "trt", "base", "age", "V4", "subject", "lbase", "lage", "visit", "obs")]
data_sets$epil <- put(ep, "epil.csv")

ome <- MASS::OME
ome$ID <- factor(ome$ID)
data_sets$ome <- put(ome, "ome.csv")

data(Contraception, package = "mlmRev")
con <- Contraception[, c("district", "use", "livch", "age", "urban")]
con$use01 <- as.integer(con$use == "Y")
con$age2 <- con$age^2
con$use <- NULL
data_sets$contraception <- put(con, "contraception.csv")

data(VerbAgg, package = "lme4")
va <- VerbAgg[as.integer(VerbAgg$id) <= 60, ]  # the first 60 respondents x 24 items
va <- droplevels(va[, c("id", "item", "Anger", "Gender", "btype", "situ", "r2")])
va$r2 <- as.integer(va$r2 == "Y")
data_sets$verbagg60 <- put(va, "verbagg60.csv")

ucb <- as.data.frame(UCBAdmissions)
ucb <- reshape(ucb, idvar = c("Gender", "Dept"), timevar = "Admit", direction = "wide")
names(ucb) <- c("Gender", "Dept", "Admitted", "Rejected")
rownames(ucb) <- NULL
data_sets$ucb <- put(ucb, "ucb.csv")

frames <- list(
  cbpp = cbpp, grouseticks = g, salamanders = sal, owls = owls, bacteria = bact,
  epil = ep, ome = ome, contraception = con, verbagg60 = va, ucb = ucb
)

# ---------------------------------------------------------------- models
# name, data, formula, family, link, covariates multiplied by 100 in the test, notes
M <- function(name, data, formula, family, link, scale = character(0), agq = FALSE,
              note = "") {
  list(name = name, data = data, formula = formula, family = family, link = link,
       scale = scale, agq = agq, note = note)
}
models <- list(
  M("cbpp", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    "binomial", "logit", agq = TRUE, note = "lme4 ?cbpp"),
  M("cbpp_cloglog", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    "binomial", "cloglog", agq = TRUE, note = "non-canonical link"),
  M("cbpp_olre", "cbpp",
    "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | herd:period)",
    "binomial", "logit", note = "interaction grouping factor = observation-level RE"),
  M("grouseticks", "grouseticks",
    "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
    "poisson", "log", scale = "cHEIGHT", note = "observation-level RE INDEX"),
  M("grouseticks_raw", "grouseticks",
    "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
    "poisson", "log", scale = "HEIGHT", note = "HEIGHT uncentred (mean 462)"),
  M("grouseticks_nested", "grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | LOCATION/BROOD)",
    "poisson", "log", scale = "cHEIGHT", note = "nested (1|a/b)"),
  M("salamanders", "salamanders", "count ~ spp + mined + (1 | site)", "poisson", "log",
    agq = TRUE, note = "glmmTMB vignette"),
  M("salamanders_cover", "salamanders", "count ~ spp * mined + cover + (1 | site)",
    "poisson", "log", scale = "cover", agq = TRUE, note = "interaction of factors"),
  M("owls", "owls",
    "SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1 | Nest)",
    "poisson", "log", agq = TRUE, note = "glmmTMB vignette (Zuur et al. 2009)"),
  M("owls_arrival_raw", "owls",
    "SiblingNegotiation ~ FoodTreatment + ArrivalTime + offset(logBroodSize) + (1 | Nest)",
    "poisson", "log", scale = "ArrivalTime", agq = TRUE, note = "raw scale (22-30 h)"),
  M("owls_slope", "owls",
    "SiblingNegotiation ~ FoodTreatment + ArrivalTime + offset(logBroodSize) + (FoodTreatment | Nest)",
    "poisson", "log", scale = "ArrivalTime", note = "correlated random slope"),
  M("bacteria", "bacteria", "yb ~ trt + week2 + (1 | ID)", "binomial", "logit",
    agq = TRUE, note = "MASS ?bacteria"),
  M("bacteria_probit", "bacteria", "yb ~ trt + week + (1 | ID)", "binomial", "probit",
    scale = "week", agq = TRUE, note = "probit"),
  M("epil", "epil", "y ~ lbase * trt + lage + V4 + (1 | subject)", "poisson", "log",
    scale = c("lbase", "lage"), agq = TRUE, note = "Breslow & Clayton (1993)"),
  M("epil_olre", "epil", "y ~ lbase * trt + lage + V4 + (1 | subject) + (1 | obs)",
    "poisson", "log", scale = c("lbase", "lage"), note = "Poisson observation-level RE"),
  M("epil_slope", "epil", "y ~ lbase * trt + lage + visit + (visit | subject)", "poisson",
    "log", scale = c("lbase", "lage", "visit"), note = "Breslow & Clayton random slope"),
  M("epil_raw", "epil", "y ~ trt + base + age + (1 | subject)", "poisson", "log",
    scale = c("base", "age"), agq = TRUE, note = "raw scales (base up to 151)"),
  M("ome", "ome", "cbind(Correct, Trials - Correct) ~ Age + OME + Loud + Noise + (1 | ID)",
    "binomial", "logit", scale = c("Age", "Loud"), agq = TRUE,
    note = "raw scales; MASS ?OME"),
  M("contraception", "contraception",
    "use01 ~ age + age2 + urban + livch + (1 | district)", "binomial", "logit",
    scale = c("age", "age2"), agq = TRUE, note = "mlmRev Contraception"),
  M("contraception_slope", "contraception",
    "use01 ~ age + age2 + urban + livch + (urban | district)", "binomial", "logit",
    scale = c("age", "age2"), note = "correlated random slope"),
  M("verbagg60", "verbagg60", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
    "binomial", "logit", scale = "Anger", note = "lme4 VerbAgg, first 60 respondents; crossed"),
  M("ucb", "ucb", "cbind(Admitted, Rejected) ~ Gender + (1 | Dept)", "binomial", "logit",
    agq = TRUE, note = "many trials (up to 825)"),
  M("bacteria_singular", "bacteria", "yb ~ trt + week2 + (1 | ID) + (1 | trt:week2)",
    "binomial", "logit", note = "near-singular")
)

tmb_vc <- function(vc) {
  rows <- list()
  for (g in names(vc)) {
    S <- vc[[g]]
    nm <- rownames(S)
    for (i in seq_along(nm)) rows[[length(rows) + 1]] <- list(
      grp = g, var1 = nm[i], vcov = S[i, i], sdcor = sqrt(S[i, i]))
    for (i in seq_along(nm)) for (j in seq_along(nm)) if (i < j)
      rows[[length(rows) + 1]] <- list(grp = g, var1 = nm[i], var2 = nm[j], vcov = S[i, j],
                                       sdcor = S[i, j] / sqrt(S[i, i] * S[j, j]))
  }
  rows
}
vc_list <- function(vc) {
  d <- as.data.frame(vc)
  lapply(seq_len(nrow(d)), function(i) list(
    grp = d$grp[i], var1 = d$var1[i], var2 = if (is.na(d$var2[i])) NULL else d$var2[i],
    vcov = d$vcov[i], sdcor = d$sdcor[i]
  ))
}
fam_of <- function(m) get(m$family)(link = m$link)

sat_loglik <- function(m, d) {
  # R's nAGQ > 1 log-likelihood leaves out the saturated log-likelihood
  f <- as.formula(m$formula)
  y <- eval(f[[2]], d)
  if (is.matrix(y)) return(sum(dbinom(y[, 1], rowSums(y), y[, 1] / rowSums(y), log = TRUE)))
  if (m$family == "poisson") return(sum(dpois(y, y, log = TRUE)))
  0  # Bernoulli: the saturated log-likelihood is zero
}

out <- list()
for (m in models) {
  d <- frames[[m$data]]
  f <- as.formula(m$formula)
  call <- sprintf('glmer(%s, data = %s, family = %s(link = "%s"))', m$formula, m$data,
                  m$family, m$link)
  msgs <- character(0)
  t0 <- proc.time()[["elapsed"]]
  fit <- withCallingHandlers(
    glmer(f, data = d, family = fam_of(m)),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") }
  )
  secs <- proc.time()[["elapsed"]] - t0
  if (!(m$link %in% c("logit", "log"))) {
    # no glmmTMB check for non-canonical links: try glmer's other optimizer, keep the better
    alt <- suppressWarnings(glmer(f, data = d, family = fam_of(m),
                                  control = glmerControl(optimizer = "bobyqa")))
    if (as.numeric(logLik(alt)) > as.numeric(logLik(fit))) {
      fit <- alt
      call <- sub(")\\)$", "), control = glmerControl(optimizer = \"bobyqa\"))", call)
    }
  }
  rec <- list(
    name = m$name, data = m$data, formula = m$formula, family = m$family, link = m$link,
    scale = m$scale, agq = m$agq, note = m$note, call = call,
    glmer = list(loglik = as.numeric(logLik(fit)), fixef = as.list(fixef(fit)),
                 varcorr = vc_list(VarCorr(fit)), theta = unname(getME(fit, "theta")),
                 singular = isSingular(fit), messages = msgs, seconds = secs)
  )
  if (m$link %in% c("logit", "log")) {  # canonical: glmmTMB's Laplace is glmer's criterion
    tmb <- glmmTMB(f, data = d, family = fam_of(m))
    rec$glmmTMB <- list(
      call = sprintf('glmmTMB(%s, data = %s, family = %s(link = "%s"))', m$formula,
                     m$data, m$family, m$link),
      loglik = as.numeric(logLik(tmb)), fixef = as.list(fixef(tmb)$cond),
      varcorr = tmb_vc(VarCorr(tmb)$cond))
  }
  if (m$agq) {
    a <- suppressWarnings(glmer(f, data = d, family = fam_of(m), nAGQ = 25))
    acall <- sub(")\\)$", "), nAGQ = 25)", call)
    # glmer's default optimizer stops early on some of these: keep the better optimum
    alt <- suppressWarnings(glmer(f, data = d, family = fam_of(m), nAGQ = 25,
                                  control = glmerControl(optimizer = "bobyqa")))
    if (as.numeric(logLik(alt)) > as.numeric(logLik(a))) {
      a <- alt
      acall <- sub(")\\)$", "), nAGQ = 25, control = glmerControl(optimizer = \"bobyqa\"))", call)
    }
    rec$agq25 <- list(
      call = acall,
      loglik_r = as.numeric(logLik(a)), saturated_loglik = sat_loglik(m, d),
      loglik = as.numeric(logLik(a)) + sat_loglik(m, d),
      fixef = as.list(fixef(a)), varcorr = vc_list(VarCorr(a)))
  }
  # the reference: the better optimum of glmer and glmmTMB
  rec$reference <- "glmer"
  if (!is.null(rec$glmmTMB) && rec$glmmTMB$loglik > rec$glmer$loglik)
    rec$reference <- "glmmTMB"
  cat(sprintf("%-22s glmer %.6f tmb %s ref %s %s\n", m$name, rec$glmer$loglik,
              if (is.null(rec$glmmTMB)) "-" else sprintf("%.6f", rec$glmmTMB$loglik),
              rec$reference, paste(substr(msgs, 1, 60), collapse = " | ")))
  out[[m$name]] <- rec
}

versions <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                 glmmTMB = format(packageVersion("glmmTMB")),
                 MASS = format(packageVersion("MASS")),
                 mlmRev = format(packageVersion("mlmRev")))
write_json(list(versions = versions, data = data_sets, models = out), "reference.json",
           auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")
