"""PNG plots: training curves, confusion matrices, ROC and precision-recall curves."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .dataset import DECISIONS  # noqa: E402


def plot_training_curves(head_history, tune_history, path):
    """Loss and accuracy per epoch over both phases, the phase change marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    n_head = len(head_history.get("loss", []))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("", "-"), ("val_", "--")):
            values = head_history.get(split + metric, []) + tune_history.get(split + metric, [])
            ax.plot(range(1, len(values) + 1), values, style, label=(split or "train_") + metric)
        ax.axvline(n_head + 0.5, color="grey", linewidth=0.8)
        ax.set_xlabel("epoch (grey line: fine-tuning starts)")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confusion(matrix, title, path):
    """A 2x2 confusion matrix with counts (rows: truth, columns: prediction)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(DECISIONS)):
        for j in range(len(DECISIONS)):
            ax.text(j, i, str(int(matrix[i][j])), ha="center", va="center",
                    color="white" if matrix[i][j] > max(map(max, matrix)) / 2 else "black")
    ax.set_xticks(range(len(DECISIONS)), DECISIONS)
    ax.set_yticks(range(len(DECISIONS)), DECISIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_curves(curves, path):
    """ROC and PR curves (positive class: no_mask) for several named evaluations.

    `curves` maps a name to a dict with fpr, tpr, roc_auc, precision, recall, average_precision.
    """
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, c in curves.items():
        roc_ax.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {c['roc_auc']:.3f})")
        pr_ax.plot(c["recall"], c["precision"], label=f"{name} (AP {c['average_precision']:.3f})")
    roc_ax.plot([0, 1], [0, 1], ":", color="grey")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (no_mask)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall (no_mask)")
    roc_ax.legend(fontsize=7)
    pr_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
