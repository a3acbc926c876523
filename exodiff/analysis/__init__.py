"""Analyses of a run file: uptake, dose, range, first passage, MSD,
profiles, mass balance, comparing runs.

Each analysis follows the freud pattern: settings in the constructor, data in
``compute(run)`` (``run`` from :func:`exodiff.io.open_run`), results as
read-only properties; ``compute`` returns ``self`` so that
``Dose().compute(run).summary`` reads in one line.  The same analyses are on
the run that :func:`open_run` here (and :func:`exodiff.open_run`) opens:
``run.dose()``, ``run.first_passage(event="bound")``.

Lengths in µm, times in s, concentrations in vesicles/µm³ (×10¹² for
particles/mL).  Every time or length setting takes a number in that unit or
a string with units, read as config values are: ``Dose(time="30 min")``,
``Profile(range_max="20 um")``.  Snapshot data (positions, states, milestones) are read in
chunks of vesicles (:meth:`exodiff.io.Run.iter_vesicles`), so memory does not
grow with the pool beyond the per-vesicle results an analysis returns.  When
the run stored a sample of the vesicles (``output.positions = {sample = n}``)
snapshot-based results describe the sample, and counts are scaled to the pool
where that is said.

Modules: common.py (the base and shared helpers), uptake.py, vesicles.py
(first passage, MSD), transfer.py (donor → recipient), profile.py,
balance.py, comparison.py, statistics.py, delivery.py (cargo by
destination: periphery, endosome, cytosol, degraded; bound time).
"""
from .. import io
from .balance import MassBalance
from .comparison import RunComparison
from .delivery import DESTINATIONS, Delivery, Engagement
from .profile import Profile
from .statistics import gini, kaplan_meier, ks_two_sample, two_proportion_z
from .uptake import Dose, UptakeCurves, UptakeRange, cell_results
from .transfer import Transfer
from .vesicles import MSD, FirstPassage, expected_diffusion, first_passage_table

__all__ = ["UptakeCurves", "Dose", "UptakeRange", "FirstPassage", "MSD", "Profile",
           "MassBalance", "RunComparison", "kaplan_meier", "ks_two_sample",
           "two_proportion_z", "gini", "cell_results", "expected_diffusion", "first_passage_table", "Transfer",
           "AnalysedRun", "open_run", "Delivery", "Engagement", "DESTINATIONS"]


class AnalysedRun(io.Run):
    """A run file (:class:`exodiff.io.Run`) with the analyses above as
    methods, each memoized per settings (the frames of an open run are fixed,
    so a result holds): :meth:`uptake_curves`, :meth:`dose`,
    :meth:`uptake_range`, :meth:`first_passage`, :meth:`transfer`, :meth:`msd`,
    :meth:`profile`, :meth:`mass_balance`, :meth:`delivery`,
    :meth:`engagement` and :meth:`cell_results`."""

    def _analysis(self, cls, settings):
        """``cls(**settings).compute(self)``, memoized per settings."""
        key = (cls.__name__, repr(sorted(settings.items())))
        cache = self.__dict__.setdefault("_analyses", {})
        if key not in cache:
            cache[key] = cls(**settings).compute(self)
        return cache[key]

    def uptake_curves(self, **settings):
        """:class:`UptakeCurves` computed on this run."""
        return self._analysis(UptakeCurves, settings)

    def dose(self, **settings):
        """:class:`Dose` computed on this run."""
        return self._analysis(Dose, settings)

    def uptake_range(self, **settings):
        """:class:`UptakeRange` computed on this run."""
        return self._analysis(UptakeRange, settings)

    def first_passage(self, **settings):
        """:class:`FirstPassage` computed on this run."""
        return self._analysis(FirstPassage, settings)

    def transfer(self, **settings):
        """:class:`Transfer` computed on this run."""
        return self._analysis(Transfer, settings)

    def msd(self, **settings):
        """:class:`MSD` computed on this run."""
        return self._analysis(MSD, settings)

    def profile(self, **settings):
        """:class:`Profile` computed on this run."""
        return self._analysis(Profile, settings)

    def mass_balance(self, **settings):
        """:class:`MassBalance` computed on this run."""
        return self._analysis(MassBalance, settings)

    def delivery(self, **settings):
        """:class:`Delivery` computed on this run."""
        return self._analysis(Delivery, settings)

    def engagement(self, **settings):
        """:class:`Engagement` computed on this run."""
        return self._analysis(Engagement, settings)

    def cell_results(self, time=None):
        """:func:`cell_results` of this run at observation ``time`` [s]."""
        return cell_results(self, time)


def open_run(path):
    """Open a run file read-only as an :class:`AnalysedRun` (InputError as
    :func:`exodiff.io.open_run`)."""
    return io.open_run(path, run_class=AnalysedRun)
