"""Data sets for trying transfer learning, as scikit-learn style Bunch objects.

- :func:`load_vader`: 23,703 sentences from four domains with human sentiment
  ratings (Hutto & Gilbert, ICWSM 2014), for sentiment regression and domain shift.
- :func:`load_fashion_mnist`: 70,000 28x28 grayscale images of clothing in
  10 classes (Xiao et al., 2017).

Files are kept in the folder given by :func:`get_data_home`. Importing this
module is cheap: it needs only numpy and scikit-learn's ``Bunch``.
"""

from sktransfer.datasets._base import clear_data_home, get_data_home
from sktransfer.datasets._fashion_mnist import load_fashion_mnist
from sktransfer.datasets._vader import load_vader

__all__ = ["clear_data_home", "get_data_home", "load_fashion_mnist", "load_vader"]
