# Reference values for tests/stats/test_glmm.py, written to references.json.
#   Rscript tests/stats/glmm_reference/references.R   (from the repository root)
# R 4.x (Debian r-base-core) with lme4 (r-cran-lme4) and jsonlite. For each data set:
#   full:   glmer(y ~ covariates + (1 | member), family = binomial, nAGQ = 15)
#   offset: eta <- predict(glm(y ~ covariates, family = binomial))
#           glmer(y ~ 1 + offset(eta) + (1 | member), family = binomial, nAGQ = 15)
# P_j = sum of fitted(m) (conditional on the member's mode), E_j = sum plogis(fixed part).
suppressMessages({library(lme4); library(jsonlite)})
here <- "tests/stats/glmm_reference"
write.csv(cbpp, file.path(here, "cbpp.csv"), row.names = FALSE)
cb <- cbpp[rep(seq_len(nrow(cbpp)), cbpp$size), c("herd", "period")]
cb$y <- unlist(mapply(function(i, s) c(rep(1, i), rep(0, s - i)), cbpp$incidence, cbpp$size))
names(cb)[1] <- "member"
sim <- read.csv(file.path(here, "simulated.csv"))
sim$member <- factor(sim$member)
fits <- function(d, rhs) {
  one <- function(m, fixed_part) {
    p <- tapply(fitted(m), d$member, sum)
    e <- tapply(plogis(fixed_part), d$member, sum)
    re <- ranef(m, condVar = TRUE)$member
    list(sigma = as.numeric(attr(VarCorr(m)$member, "stddev")),
         fixef = as.list(fixef(m)), loglik = as.numeric(logLik(m)),
         member = names(p), predicted = as.numeric(p), expected = as.numeric(e),
         ratio = as.numeric(p / e), mode = re[names(p), 1],
         mode_sd = sqrt(as.numeric(attr(re, "postVar")))[match(names(p), rownames(re))])
  }
  full <- glmer(as.formula(paste("y ~", rhs, "+ (1 | member)")), family = binomial,
                data = d, nAGQ = 15)
  d$eta <- predict(glm(as.formula(paste("y ~", rhs)), family = binomial, data = d))
  off <- glmer(y ~ 1 + offset(eta) + (1 | member), family = binomial, data = d, nAGQ = 15)
  list(full = one(full, model.matrix(as.formula(paste("~", rhs)), d) %*% fixef(full)),
       offset = one(off, fixef(off)[1] + d$eta))
}
# COUNT's medpar (tests/data/count_medpar.csv): what `qicollab analyze risk` fits.
med <- read.csv("tests/data/count_medpar.csv", colClasses = c(provnum = "character"))
med$member <- factor(med$provnum)
med$y <- med$died
med$type <- factor(med$type)
out <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            cbpp = fits(cb, "period"), simulated = fits(sim, "x1 + x2"),
            medpar = fits(med, "hmo + white + age80 + type"))
write_json(out, file.path(here, "references.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
