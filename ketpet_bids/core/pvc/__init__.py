"""Partial-volume correction: GTM, RBV, Müller-Gärtner, iterative Yang, Van Cittert,
Richardson–Lucy (pure numpy/scipy). Entry points: :mod:`.registry` (``prepare``,
``correct``), PSF in :mod:`.psf`, region maps in :mod:`.regions`."""
