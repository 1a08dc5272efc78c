import torch
texts = ["one two three", "four five six", "alpha beta", "gamma delta"]
acts = []
for t in texts:
    with model.trace(t):
        acts.append(model.transformer.h[3].output[0][0, -1].save())
X = torch.stack(acts)
Xc = X - X.mean(0)
cov = Xc.T @ Xc / (X.shape[0] - 1)
print(cov.shape, round(cov.trace().item(), 3) if hasattr(cov, "trace") else None)
sims = torch.nn.functional.cosine_similarity(X[:, None, :], X[None, :, :], dim=-1)
print([[round(s, 3) for s in row] for row in sims.tolist()])
