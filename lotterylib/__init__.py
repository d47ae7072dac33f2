"""lotterylib: the library behind the reproduction of "When BERT Plays the Lottery, All Tickets Are Winning"."""
import warnings

from tqdm import TqdmWarning

# Libraries' `tqdm.auto` bars fall back to text without ipywidgets; the warning about it is noise in notebooks.
warnings.filterwarnings("ignore", category=TqdmWarning)

__version__ = "0.1.0"
