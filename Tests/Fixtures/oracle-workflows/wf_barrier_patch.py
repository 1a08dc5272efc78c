with model.trace() as tracer:
    barrier = tracer.barrier(2)
    with tracer.invoke("The Eiffel Tower is in"):
        paris = model.transformer.wte.output
        barrier()
    with tracer.invoke("_ _ _ _ _"):
        barrier()
        model.transformer.wte.output = paris
        patched = model.lm_head.output[:, -1].argmax(dim=-1).save()
print(patched)
