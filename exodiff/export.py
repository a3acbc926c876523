"""Opening a run in other tools: an XDMF sidecar for ParaView (and VisIt),
and an MDAnalysis Universe.

``exodiff export RUN.h5 --xdmf`` writes ``RUN.xdmf`` beside the run.  It holds
no data, only XML that points into the run file: ParaView's XDMF reader then
shows a time series with, at each snapshot, three blocks:

- ``vesicles``: one point per stored vesicle (position [µm]) with point
  arrays ``state`` (0 pending … 5 cleared), ``cell`` (-1 if none),
  ``species``, ``radius`` [µm] and ``id`` (pool index);
- ``cells``: one point per cell with ``radius`` [µm], ``type``, and, from the
  observation at that snapshot's time, ``bound``, ``internalized`` and the
  cargo delivered per kind (use the Glyph filter, Sphere, scale by
  ``radius``, factor 2... or "Point Gaussian" with radius scaling);
- ``box``: the domain as one hexahedron.

The XDMF names the run file by a path relative to itself: keep the two
files together.
"""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .errors import InputError

_NUMBER_TYPES = {  # numpy dtype -> (XDMF NumberType, Precision)
    np.dtype(np.int8): ("Char", 1), np.dtype(np.uint8): ("UChar", 1),
    np.dtype(np.int32): ("Int", 4), np.dtype(np.int64): ("Int", 8),
    np.dtype(np.uint32): ("UInt", 4), np.dtype(np.float32): ("Float", 4),
    np.dtype(np.float64): ("Float", 8),
}


def _number(dtype):
    nt, prec = _NUMBER_TYPES[np.dtype(dtype).newbyteorder("=")]
    return f'NumberType="{nt}" Precision="{prec}"'


def _dims(shape):
    return " ".join(str(int(d)) for d in shape)


class _Xdmf:
    """Builds the XML text of DataItems pointing into one HDF5 file."""

    def __init__(self, h5_name, run):
        self.h5 = h5_name
        self.run = run

    def whole(self, path):
        shape, dtype = self.run.dataset_shape(path)
        return (f'<DataItem Dimensions="{_dims(shape)}" {_number(dtype)} Format="HDF">'
                f"{escape(self.h5)}:{escape(path)}</DataItem>")

    def row(self, path, i, column=None):
        """Frame ``i`` of a series ``value[F, a, (b)]`` (and one ``column`` of
        its last axis), as a hyperslab of the frame's shape."""
        shape = self.run.dataset_shape(path)[0]
        start = [i] + [0] * (len(shape) - 1)
        count = [1] + list(shape[1:])
        if column is not None:
            start[-1], count[-1] = column, 1
        stride = [1] * len(shape)
        out_shape = shape[1:-1] if column is not None else shape[1:]
        return (f'<DataItem ItemType="HyperSlab" Dimensions="{_dims(out_shape)}" Type="HyperSlab">'
                f'<DataItem Dimensions="3 {len(shape)}" Format="XML">'
                f"{_dims(start)} {_dims(stride)} {_dims(count)}</DataItem>"
                f"{self.whole(path)}</DataItem>")


def xdmf_text(run, h5_name):
    """The XDMF 2 document (str) for an open run whose file the document
    names as ``h5_name``."""
    if not run.has_positions:
        raise InputError(f"{run.path}: positions were not stored in this run; "
                         "an XDMF time series of points needs them")
    x = _Xdmf(h5_name, run)
    n, M, S = run.n_stored, len(run.cells), run.n_snapshots
    ves = "/particles/vesicles"
    lines = ['<?xml version="1.0" ?>', '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>',
             '<Xdmf Version="2.0">', ' <Domain>',
             f' <Information Name="exodiff" Value={quoteattr(f"run {run.path.name}: lengths um, times s")}/>',
             '  <Grid Name="run" GridType="Collection" CollectionType="Temporal">']
    L = run.box_edges
    corners = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                        [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float64) * L
    box_xyz = " ".join(f"{v:.17g}" for v in corners.ravel())
    obs_times = run.observation_times
    for i in range(S):
        t = float(run.snapshot_times[i])
        lines.append(f'   <Grid Name="t{i}" GridType="Collection" CollectionType="Spatial">')
        lines.append(f'    <Time Value="{t:.17g}"/>')
        # vesicles
        lines.append('    <Grid Name="vesicles" GridType="Uniform">')
        lines.append(f'     <Topology TopologyType="Polyvertex" NumberOfElements="{n}" NodesPerElement="1"/>')
        lines.append(f'     <Geometry GeometryType="XYZ">{x.row(ves + "/position/value", i)}</Geometry>')
        for name, path in (("state", "/state/value"), ("cell", "/cell/value")):
            lines.append(f'     <Attribute Name="{name}" AttributeType="Scalar" Center="Node">'
                         f'{x.row(ves + path, i)}</Attribute>')
        for name in ("species", "radius", "id"):
            lines.append(f'     <Attribute Name="{name}" AttributeType="Scalar" Center="Node">'
                         f'{x.whole(f"{ves}/{name}")}</Attribute>')
        lines.append('    </Grid>')
        # cells, with the uptake observed at this snapshot's time
        if M:
            lines.append('    <Grid Name="cells" GridType="Uniform">')
            lines.append(f'     <Topology TopologyType="Polyvertex" NumberOfElements="{M}" NodesPerElement="1"/>')
            lines.append(f'     <Geometry GeometryType="XYZ">{x.whole("/particles/cells/position")}</Geometry>')
            for name in ("radius", "type"):
                lines.append(f'     <Attribute Name="{name}" AttributeType="Scalar" Center="Node">'
                             f'{x.whole("/particles/cells/" + name)}</Attribute>')
            k = int(np.searchsorted(obs_times, t + 1e-9 * max(1.0, t), side="right")) - 1
            if k >= 0:
                for name in ("bound", "internalized"):
                    lines.append(f'     <Attribute Name="{name}" AttributeType="Scalar" Center="Node">'
                                 f'{x.row(f"/observables/cells/{name}/value", k)}</Attribute>')
                for j, cargo in enumerate(run.cargo_names):
                    lines.append(f'     <Attribute Name={quoteattr("cargo_" + cargo)} AttributeType="Scalar" '
                                 f'Center="Node">{x.row("/observables/cells/cargo/value", k, column=j)}'
                                 '</Attribute>')
            lines.append('    </Grid>')
        # the domain
        lines.append('    <Grid Name="box" GridType="Uniform">')
        lines.append('     <Topology TopologyType="Hexahedron" NumberOfElements="1">'
                     '<DataItem Dimensions="1 8" NumberType="Int" Format="XML">0 1 2 3 4 5 6 7</DataItem>'
                     '</Topology>')
        lines.append('     <Geometry GeometryType="XYZ"><DataItem Dimensions="8 3" NumberType="Float" '
                     f'Precision="8" Format="XML">{box_xyz}</DataItem></Geometry>')
        lines.append('    </Grid>')
        lines.append('   </Grid>')
    lines += ['  </Grid>', ' </Domain>', '</Xdmf>', '']
    return "\n".join(lines)


def write_xdmf(run, out=None):
    """Write the XDMF sidecar of an open run to ``out`` (default: the run's
    path with suffix .xdmf).  Returns the path written."""
    out = Path(out) if out is not None else run.path.with_suffix(".xdmf")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise InputError(f"{out}: the directory {folder} does not exist")
    if out.is_dir():
        raise InputError(f"{out}: is a directory")
    h5_name = os.path.relpath(run.path.resolve(), folder)
    text = xdmf_text(run, h5_name)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def mdanalysis_universe(path, **kwargs):
    """The run's vesicle trajectory as an ``MDAnalysis.Universe`` (needs
    MDAnalysis): one atom per stored vesicle, positions in µm (MDAnalysis
    does not know the micrometre, so units are not converted:
    ``convert_units=False``), time in s, box from ``box/edges``.  Atoms carry
    ``radii`` [µm] and ``types`` (population names).  Other keyword
    arguments go to MDAnalysis' H5MD reader.

    The same without exodiff::

        import h5py, MDAnalysis as mda
        from MDAnalysis.coordinates.H5MD import H5MDReader
        H5MDReader._unit_translation["length"]["um"] = "um"
        with h5py.File(path, "r") as f:
            n = f["particles/vesicles/position/value"].shape[1]
        u = mda.Universe.empty(n, trajectory=True)
        u.load_new(path, format="H5MD", convert_units=False)

    (MDAnalysis 2.x knows only Å, nm, pm and fm as length units and rejects
    any other unit name even with ``convert_units=False``, hence the line
    that registers exodiff's ``um`` as a known, unconverted unit.)
    """
    try:
        import MDAnalysis as mda
        from MDAnalysis.coordinates.H5MD import H5MDReader
    except ImportError:
        raise InputError("MDAnalysis is not installed (pip install MDAnalysis)") from None
    from .io import open_run
    with open_run(path) as run:
        if not run.has_positions:
            raise InputError(f"{run.path}: positions were not stored in this run")
        n = run.n_stored
        radii = run.vesicle_radius
        names = np.array(run.species_names or ("vesicle",), dtype=object)
        types = names[run.species] if run.species_names else np.full(n, "vesicle", dtype=object)
    # MDAnalysis rejects unit names it cannot translate, even when told not to convert.
    H5MDReader._unit_translation["length"].setdefault("um", "um")
    kwargs.setdefault("convert_units", False)
    u = mda.Universe.empty(n, trajectory=True)
    u.add_TopologyAttr("radii", radii)
    u.add_TopologyAttr("types", types)
    u.load_new(os.fspath(path), format="H5MD", **kwargs)
    return u
