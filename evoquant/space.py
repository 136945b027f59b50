"""The genome: which layers are searched, the bit-widths each gene may take, genes -> bits.

pymoo sees a genome as integer level indices (gene ``i`` takes values ``xl[i]..xu[i]``,
one per entry of its alphabet, in ascending bit order); everything outside the search
sees bit lists. Fixed layers keep a one-entry alphabet, so no operator can move them.
With a deployment ``target`` each layer's alphabet keeps only the widths the target can
run for that layer's kind, so every genome the search meets is deployable as is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from evoquant.config import RunConfig, check_alphabet
from evoquant.errors import UserError
from evoquant.quant.fakequant import BIT_WIDTHS
from evoquant.quant.layers import Layer
from evoquant.registry import GENE_POLICIES, TARGETS, UnknownName, lookup

ACTIVATION_ALPHABET = (8, 16)
WEIGHTS, ACTIVATIONS = "weights", "activations"


def thesis_activation_bits(weight_bits: int) -> int:
    """The thesis's convention: 8-bit activations up to W8, 16-bit with W16."""
    return 16 if weight_bits > 8 else 8


class GenePolicy:
    """How a layer's widths become genes: ``search.policy``, registered in ``GENE_POLICIES``.

    ``genes`` gives a layer's genes in order, each a role (``weights`` or
    ``activations``) and the widths it may take; a layer without an ``activations``
    gene gets the activation width its weights imply (``SearchSpace.activation_bits``).
    ``name`` is the spelling configs and run files store.
    """

    name = ""
    derives_activations = True
    """No activation gene: the weight gene sets both widths (what a target needs)."""

    def genes(
        self, weights: tuple[int, ...], pinned: int | None
    ) -> list[tuple[str, tuple[int, ...]]]:
        return [(WEIGHTS, weights)]

    def uniform_activations(self) -> tuple[int | None, ...]:
        """The activation widths uniform genomes are made with (None: the implied one)."""
        return (None,)


@GENE_POLICIES.register_module(["weight_gene", "thesis"])
class WeightGene(GenePolicy):
    """One gene per layer, its weight width; activations follow (the thesis's W -> A)."""

    name = "thesis"


@GENE_POLICIES.register_module(["weight_and_activation_genes", "two_genes"])
class WeightAndActivationGenes(GenePolicy):
    """Two genes per layer: weight width, then activation width (8 or 16)."""

    name = "two_genes"
    derives_activations = False

    def genes(
        self, weights: tuple[int, ...], pinned: int | None
    ) -> list[tuple[str, tuple[int, ...]]]:
        acts = (
            ACTIVATION_ALPHABET if pinned is None else (thesis_activation_bits(pinned),)
        )
        return [(WEIGHTS, weights), (ACTIVATIONS, acts)]

    def uniform_activations(self) -> tuple[int | None, ...]:
        return ACTIVATION_ALPHABET


def gene_policy(name: str) -> GenePolicy:
    """The policy registered as ``name``; an unknown one is a UserError listing the rest."""
    try:
        return lookup(GENE_POLICIES, name)()
    except UnknownName as error:
        raise UserError(str(error)) from None


def target_rules(name: str):
    """The deployment target registered as ``name`` (``evoquant.targets.Target``)."""
    try:
        return lookup(TARGETS, name)
    except UnknownName as error:
        raise UserError(str(error)) from None


def _check_alphabet(alphabet: Iterable[int]) -> tuple[int, ...]:
    """The alphabet as ascending levels, checked as a config's is."""
    try:
        return tuple(sorted(set(check_alphabet(alphabet))))
    except ValueError as error:
        raise UserError(f"search.alphabet: {error}") from None


def _resolve_fixed(
    layers: Sequence[Layer], fixed: Mapping[str, int], alphabet: tuple[int, ...]
) -> dict[str, int]:
    """Layer name -> pinned bits; a pattern must match a layer and a layer gets one value."""
    pinned: dict[str, int] = {}
    for pattern, bits in fixed.items():
        if bits not in alphabet:
            raise UserError(
                f"layers.fixed {pattern!r}: {bits} bits is not in the alphabet {list(alphabet)}"
            )
        names = [layer.name for layer in layers if fnmatchcase(layer.name, pattern)]
        if not names:
            raise UserError(
                f"layers.fixed pattern {pattern!r} matches no searched layer"
            )
        for name in names:
            if pinned.setdefault(name, bits) != bits:
                raise UserError(
                    f"layers.fixed pins layer {name} to both {pinned[name]} and {bits} bits"
                )
    return pinned


class SearchSpace:
    """The ordered layer table and, per gene, the bit-widths it may take.

    ``target`` (``"tensorrt"`` or None) restricts each layer's alphabet to what the
    target runs for its kind; ``weight_shapes`` (layer name -> weight shape) lets it
    judge shape-dependent support (INT4 blocks), and without it such support is denied.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        alphabet: Iterable[int] = BIT_WIDTHS,
        fixed: Mapping[str, int] | None = None,
        policy: str = "thesis",
        macs: Mapping[str, int] | None = None,
        target: str | None = None,
        weight_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if not layers:
            raise UserError("no quantizable layer to search")
        self.gene_policy = gene_policy(policy)
        self.rules = None if target is None else target_rules(target)
        if target is not None and not self.gene_policy.derives_activations:
            raise UserError(
                f"target {target} derives activations from weights: use search.policy "
                "thesis (weight_gene)"
            )
        self.layers = tuple(layers)
        self.policy = self.gene_policy.name or policy
        self.target = target
        self.alphabet = _check_alphabet(alphabet)
        self.fixed = _resolve_fixed(self.layers, fixed or {}, self.alphabet)
        self.macs = tuple(int((macs or {}).get(layer.name, 0)) for layer in self.layers)
        shapes = weight_shapes or {}
        self._genes: list[tuple[int, str, tuple[int, ...]]] = []
        for index, layer in enumerate(self.layers):
            allowed = self._layer_alphabet(layer, tuple(shapes.get(layer.name, ())))
            pinned = self.fixed.get(layer.name)
            if pinned is not None and pinned not in allowed:
                raise UserError(
                    f"layers.fixed pins {layer.name} to {pinned} bits, which {target} "
                    f"cannot run for a {layer.kind} layer (it can: {list(allowed)})"
                )
            weights = allowed if pinned is None else (pinned,)
            for role, widths in self.gene_policy.genes(weights, pinned):
                self._genes.append((index, role, tuple(widths)))
        self.xl = np.zeros(self.n_genes, dtype=int)
        self.xu = np.array(
            [len(alphabet) - 1 for *_, alphabet in self._genes], dtype=int
        )

    def _layer_alphabet(
        self, layer: Layer, weight_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The configured alphabet, less what the target cannot run for this layer."""
        if self.target is None:
            return self.alphabet
        runnable = {
            w for w, _ in self.rules.deployable_configs(layer.kind, weight_shape)
        }
        allowed = tuple(bits for bits in self.alphabet if bits in runnable)
        if not allowed:
            raise UserError(
                f"layer {layer.name}: no width of search.alphabet {list(self.alphabet)} "
                f"runs on {self.target} for a {layer.kind} layer ({sorted(runnable)} do)"
            )
        return allowed

    @classmethod
    def from_config(
        cls,
        layers: Sequence[Layer],
        config: RunConfig,
        macs: Mapping[str, int] | None = None,
        weight_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> SearchSpace:
        return cls(
            layers,
            alphabet=config.search.alphabet,
            fixed=config.layers.fixed,
            policy=config.search.policy,
            macs=macs,
            target=config.target,
            weight_shapes=weight_shapes,
        )

    def activation_bits(self, weight_bits: int) -> int:
        """Activation width a weight gene implies: the thesis rule, or the target's."""
        if self.rules is not None:
            return self.rules.activation_bits(weight_bits)
        return thesis_activation_bits(weight_bits)

    @property
    def n_genes(self) -> int:
        """The genome length L (one gene per layer, two under the ``two_genes`` policy)."""
        return len(self._genes)

    @property
    def gene_names(self) -> list[str]:
        """One label per gene: the layer name, suffixed with W or A where a layer has two."""
        if self.gene_policy.derives_activations:
            return [self.layers[i].name for i, *_ in self._genes]
        return [
            f"{self.layers[i].name} ({role[0].upper()})" for i, role, _ in self._genes
        ]

    def _per_layer(self, values: Sequence[Any]) -> list[dict[str, Any]]:
        """Per layer, its genes' ``values`` by role."""
        layers: list[dict[str, Any]] = [{} for _ in self.layers]
        for (index, role, _), value in zip(self._genes, values):
            layers[index][role] = value
        return layers

    def reachable_configs(self) -> set[tuple[int, int]]:
        """Every (weight bits, activation bits) some genome of this space can ask a layer for."""
        reachable = set()
        for genes in self._per_layer(self.gene_alphabets):
            for w in genes[WEIGHTS]:
                acts = genes.get(ACTIVATIONS, (self.activation_bits(w),))
                reachable |= {(w, a) for a in acts}
        return reachable

    @property
    def gene_alphabets(self) -> list[tuple[int, ...]]:
        return [alphabet for *_, alphabet in self._genes]

    def to_bits(self, levels: Sequence[int] | np.ndarray) -> list[int]:
        """Level indices (what pymoo evolves) -> the bit list every other module sees."""
        return [
            alphabet[int(level)] for (*_, alphabet), level in zip(self._genes, levels)
        ]

    def from_bits(self, bits: Sequence[int]) -> np.ndarray:
        """A bit list -> level indices; a wrong length or a bit-width a gene cannot take is a UserError."""
        if len(bits) != self.n_genes:
            raise UserError(
                f"genome has {len(bits)} genes but the search space has {self.n_genes}"
            )
        levels = np.empty(self.n_genes, dtype=int)
        for gene, ((index, role, alphabet), value) in enumerate(zip(self._genes, bits)):
            if value not in alphabet:
                raise UserError(
                    f"genome gene {gene} ({role} of layer {self.layers[index].name}): "
                    f"{value} bits is not in its alphabet {list(alphabet)}"
                )
            levels[gene] = alphabet.index(value)
        return levels

    def bit_configs(self, bits: Sequence[int]) -> list[tuple[int, int]]:
        """Per layer ``(weight bits, activation bits)``, the policy applied."""
        self.from_bits(bits)
        configs = []
        for genes in self._per_layer(bits):
            w = int(genes[WEIGHTS])
            configs.append((w, int(genes.get(ACTIVATIONS, self.activation_bits(w)))))
        return configs

    def uniform(
        self, weight_bits: int, activation_bits: int | None = None
    ) -> np.ndarray:
        """Level indices of the uniform configuration W``weight_bits`` (fixed layers keep theirs).

        Activations follow the thesis rule unless ``activation_bits`` is given, which
        only the ``two_genes`` policy can honour.
        """
        acts = (
            self.activation_bits(weight_bits)
            if activation_bits is None
            else activation_bits
        )
        if self.gene_policy.derives_activations and acts != self.activation_bits(
            weight_bits
        ):
            raise UserError(
                f"policy 'thesis' derives activations from weights: W{weight_bits}A{acts} is not reachable"
            )
        bits = []
        for _, role, alphabet in self._genes:
            wanted = weight_bits if role == WEIGHTS else acts
            bits.append(alphabet[0] if len(alphabet) == 1 else wanted)
        return self.from_bits(bits)

    def uniform_levels(self) -> tuple[int, ...]:
        """Weight widths every searched (not fixed) layer can take: the uniform configurations."""
        free = [
            alphabet
            for index, role, alphabet in self._genes
            if role == WEIGHTS and self.layers[index].name not in self.fixed
        ]
        return tuple(w for w in self.alphabet if all(w in a for a in free))

    def uniform_genomes(self) -> np.ndarray:
        """Every uniform configuration the alphabets allow, as rows of level indices."""
        acts = self.gene_policy.uniform_activations()
        return np.array(
            [self.uniform(w, a) for w, a in product(self.uniform_levels(), acts)],
            dtype=int,
        )

    def module_boundaries(self) -> list[int]:
        """Gene indices where a new main module (top-level child) starts."""
        starts = []
        for gene in range(1, self.n_genes):
            before, after = (
                self.layers[self._genes[gene - 1][0]],
                self.layers[self._genes[gene][0]],
            )
            if before.main_module != after.main_module:
                starts.append(gene)
        return starts


def layer_weight_shapes(
    model: nn.Module, layers: Sequence[Layer]
) -> dict[str, tuple[int, ...]]:
    """Weight shape of every weighted layer, for shape-dependent target support."""
    modules = dict(model.named_modules())
    return {
        layer.name: tuple(modules[layer.name].weight.shape)
        for layer in layers
        if layer.num_weights
    }


def _layer_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return output.numel() * inputs[0].shape[-1]


def measure_macs(
    model: nn.Module,
    run: Callable[[nn.Module, Any], Any],
    batch: Any,
    layers: Sequence[Layer],
) -> dict[str, int]:
    """Multiply-accumulates of each layer over one ``run(model, batch)``, read from real shapes.

    Counted with forward hooks, so attention MatMuls get their data-dependent sizes;
    a layer the forward never reaches counts 0.
    """
    modules = dict(model.named_modules())
    macs = {layer.name: 0 for layer in layers}

    def hook(name: str) -> Callable[..., None]:
        def count(
            module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
        ) -> None:
            macs[name] += _layer_macs(module, inputs, output)

        return count

    handles = [
        modules[layer.name].register_forward_hook(hook(layer.name)) for layer in layers
    ]
    try:
        with torch.no_grad():
            run(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return macs
