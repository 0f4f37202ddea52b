"""Every option of every command, as dataclass configs with help text: the schema, nothing else.

A config is a plain ``@dataclass``: the command line (``visionlab.cli``) is generated from its fields
(``--snake-case`` flags, the help text from each field's ``help`` metadata), and interpreter mode builds the same
object, e.g. ``FitConfig(image="coffee", steps=500)``; ``visionlab.manager.build_config`` makes one from a preset and
options. ``validate()`` checks each option's range, for both modes, before any run folder is made; where a component
takes the same value from Python code (a sample selector's ratio, Min-SNR's gamma), it calls the schema's own rule
(``opt.fit.check_ratio``, ``opt.generate.check_min_snr``), so that each rule is written once.

The modules: ``fields`` (``option()``, the options several commands share: the ``OnDevice`` and ``RunFolder`` mixins
and field makers, and their checks), ``fit`` (neural fields, experiments), ``classify`` (classifiers, segmentation,
features, shapes) and ``generate`` (diffusion, GANs, samples).
"""

from visionlab.opt.classify import ClassifyConfig, FeaturesConfig, SegmentConfig, ShapesConfig
from visionlab.opt.fields import OnDevice, RunFolder, from_dict, help_text, option
from visionlab.opt.fit import ExperimentConfig, FitConfig, parse_shard
from visionlab.opt.generate import DiffuseConfig, EvaluateSamplesConfig, GanConfig, SampleConfig

__all__ = ["ClassifyConfig", "DiffuseConfig", "EvaluateSamplesConfig", "ExperimentConfig", "FeaturesConfig",
           "FitConfig", "GanConfig", "OnDevice", "RunFolder", "SampleConfig", "SegmentConfig", "ShapesConfig",
           "from_dict", "help_text", "option", "parse_shard"]
